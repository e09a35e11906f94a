#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME each (default 10m):
# targets are discovered per package with `go test -list '^Fuzz'`, so a new
# `func FuzzX` anywhere is picked up without editing this script. Inputs
# that fail are written by `go test` to the package's testdata/fuzz/FuzzX/
# directory; commit them so they run in `make test` from then on.
#
#   FUZZTIME=1m scripts/fuzz.sh            every target, a minute each
#   scripts/fuzz.sh ./internal/amqp/...    only those packages
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10m}
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)

failed=()
ran=0
for pkg in $($GO list "${pkgs[@]}"); do
	# -list runs nothing; it prints the matching names, then "ok".
	targets=$($GO test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for target in $targets; do
		ran=$((ran + 1))
		echo "== $pkg $target ($FUZZTIME)"
		if ! $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"; then
			failed+=("$pkg $target")
		fi
	done
done

echo "== $ran fuzz targets run"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}"
	echo "crashers are in each package's testdata/fuzz/; commit them with the fix"
	exit 1
fi
