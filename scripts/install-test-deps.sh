#!/usr/bin/env bash
# install-test-deps.sh: installs what Sluice's test tiers need, on Debian, as root.
#
#   - Debian packages: python3-pika for the cross-language tier, chromium for the web
#     console's browser tests (internal/console, driven by chromedp), iproute2 and
#     iptables for the cluster's network partitions (test/cluster, run as root), and
#     Node.js/npm from Debian only when no node is on PATH. Nothing is fetched when all are installed.
#   - npm: amqplib for test/crosslang, pinned by its package-lock.json (`npm ci`),
#     skipped when node_modules already matches the lock.
#   - rabbitmqadmin 3.10.8 for the HTTP API's integration tier: Debian's rabbitmq-server
#     package is downloaded (not installed) and the script taken from its management
#     plugin (priv/www/cli) into $SLUICE_TEST_CACHE (default ~/.cache/sluice-test).
#   - Go: the module cache for the repository's modules and for the amqp091-go
#     integration suite that test/compat runs, so that tier resolves offline.
#
#   - Tools taken out of Debian packages without installing them (no services
#     started, no dependencies pulled): promtool and prometheus from Debian's
#     `prometheus` for the metrics tests, rabbitmqadmin from `rabbitmq-server` for the
#     management API tests, into .cache/tools/bin.
#
# Idempotent and fast when everything is in place. RabbitMQ itself is not a test
# dependency: scripts/rabbitmq-local.sh install brings it for comparisons and benchmarks.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GO="${GO:-go}"
# The amqp091-go release whose integration suite test/compat runs (keep in step with
# test/compat/compat_test.go).
AMQP091_MODULE="github.com/rabbitmq/amqp091-go@v1.16.0"
export DEBIAN_FRONTEND=noninteractive

log() { echo "install-test-deps: $*" >&2; }

deb_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

install_debs() {
	local want=(python3 python3-pika chromium iproute2 iptables) missing=() p
	if ! command -v node >/dev/null 2>&1; then
		want+=(nodejs)
	fi
	if ! command -v npm >/dev/null 2>&1; then
		want+=(npm)
	fi
	for p in "${want[@]}"; do
		deb_installed "$p" || missing+=("$p")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		log "Debian packages present: ${want[*]}"
		return
	fi
	if [ "$(id -u)" != 0 ]; then
		log "need root to apt-get install: ${missing[*]}"
		exit 1
	fi
	log "apt-get install ${missing[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_npm() {
	local dir="$ROOT/test/crosslang" stamp="$ROOT/test/crosslang/node_modules/.sluice-lock"
	if [ -f "$stamp" ] && cmp -s "$stamp" "$dir/package-lock.json" &&
		[ -f "$dir/node_modules/amqplib/package.json" ]; then
		log "npm packages in test/crosslang match package-lock.json"
		return
	fi
	log "npm ci in test/crosslang"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	cp "$dir/package-lock.json" "$stamp"
}

install_go() {
	log "go mod download (repository modules, $AMQP091_MODULE and its test dependencies)"
	(cd "$ROOT" && "$GO" mod download)
	local dir
	dir="$(cd "$ROOT" && "$GO" mod download -json "$AMQP091_MODULE" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
	if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
		log "could not locate $AMQP091_MODULE in the module cache"
		exit 1
	fi
	# The suite's own requirements (goleak), read from its go.mod.
	(cd "$dir" && GOWORK=off GOFLAGS=-mod=mod "$GO" mod download)
}

# deb_tool PACKAGE FILE...: puts FILEs of a Debian package into
# .cache/tools/bin, unpacking the package without installing it (no services
# started, no dependencies pulled). A FILE is a path inside the package and
# may hold shell wildcards (a version in a directory name).
TOOLS="$ROOT/.cache/tools/bin"
deb_tool() {
	local pkg="$1" f found missing=()
	shift
	for f in "$@"; do
		[ -x "$TOOLS/$(basename "$f")" ] || missing+=("$f")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		log "tools from $pkg present in .cache/tools/bin"
		return
	fi
	local tmp
	tmp="$(mktemp -d)"
	log "apt-get download $pkg (unpacked for ${missing[*]})"
	(cd "$tmp" && { apt-get download -qq "$pkg" 2>/dev/null || { apt-get update -qq && apt-get download -qq "$pkg"; }; })
	dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/root"
	mkdir -p "$TOOLS"
	for f in "${missing[@]}"; do
		found="$(find "$tmp/root" -path "$tmp/root/$f" | head -n1)"
		if [ -z "$found" ]; then
			log "no $f in $pkg"
			exit 1
		fi
		install -m 0755 "$found" "$TOOLS/$(basename "$f")"
	done
	rm -rf "$tmp"
}

install_debs
install_npm
install_go
deb_tool prometheus usr/bin/promtool usr/bin/prometheus
# rabbitmqadmin 3.10.8, the management plugin's CLI, for the management API tests.
deb_tool rabbitmq-server 'usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_management-*/priv/www/cli/rabbitmqadmin'
log "done"
