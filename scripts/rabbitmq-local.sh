#!/usr/bin/env bash
# rabbitmq-local.sh: a private RabbitMQ node for comparisons and benchmarks.
#
#   scripts/rabbitmq-local.sh install   apt-get install Debian's rabbitmq-server without
#                                       leaving the system service running
#   scripts/rabbitmq-local.sh start     start a private node on 127.0.0.1 and wait until it
#                                       accepts AMQP connections
#   scripts/rabbitmq-local.sh stop      stop that node
#   scripts/rabbitmq-local.sh status    print whether it runs (exit 0) or not (exit 1)
#   scripts/rabbitmq-local.sh url       print the node's AMQP URL
#   scripts/rabbitmq-local.sh ctl ARGS  run rabbitmqctl against the node
#
#   scripts/rabbitmq-local.sh cluster-start   start a private 3-node cluster (ports
#                                       RABBITMQ_CLUSTER_PORTS) and join its nodes
#   scripts/rabbitmq-local.sh cluster-stop    stop the cluster's nodes
#   scripts/rabbitmq-local.sh cluster-status  print the cluster's members (exit 1 when down)
#   scripts/rabbitmq-local.sh cluster-url     print the first cluster node's AMQP URL
#
# The cluster's nodes are independent of the single node: their own ports, directories
# (RABBITMQ_BASE/node-PORT) and node names, one Erlang cookie (RABBITMQ_BASE/cluster-cookie).
# A queue declared with x-queue-type quorum on it (`sluice bench --queue-type quorum`) has
# all three nodes as members, its leader on the node it was declared on.
#
# Environment:
#   RABBITMQ_PORT        AMQP port (default 5681)
#   RABBITMQ_BASE        the node's own directory: data, logs, config, cookie
#                        (default /tmp/sluice-rabbitmq)
#   RABBITMQ_MANAGEMENT  1 enables the management plugin (default 0)
#   RABBITMQ_MGMT_PORT   management HTTP port when enabled (default 15681)
#   RABBITMQ_START_TIMEOUT  seconds to wait for the node to come up (default 90)
#   RABBITMQ_CLUSTER_PORTS  the cluster nodes' AMQP ports (default "5691 5692 5693"; each
#                        node's Erlang distribution listens on its port + 20000)
#
# The node runs as root from Debian's own scripts, with everything it writes under
# RABBITMQ_BASE, its Erlang distribution and epmd bound to 127.0.0.1, and user guest/guest.
set -euo pipefail

PORT="${RABBITMQ_PORT:-5681}"
BASE="${RABBITMQ_BASE:-/tmp/sluice-rabbitmq}"
MANAGEMENT="${RABBITMQ_MANAGEMENT:-0}"
MGMT_PORT="${RABBITMQ_MGMT_PORT:-15681}"
START_TIMEOUT="${RABBITMQ_START_TIMEOUT:-90}"
CLUSTER_PORTS="${RABBITMQ_CLUSTER_PORTS:-5691 5692 5693}"
RMQ_BIN=/usr/lib/rabbitmq/bin

# set_node makes the node on AMQP port $1 the one the commands act on.
set_node() {
	PORT="$1"
	NODE_DIR="$BASE/node-$PORT"
	NODENAME="sluice$PORT@localhost"
}
set_node "$PORT"

log() { echo "rabbitmq-local: $*" >&2; }
die() { log "$*"; exit 1; }

# node_env exports what Debian's rabbitmq scripts read to place a node.
node_env() {
	export HOME="$NODE_DIR/home"
	export RABBITMQ_NODENAME="$NODENAME"
	export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
	export RABBITMQ_NODE_PORT="$PORT"
	export RABBITMQ_DIST_PORT=$((PORT + 20000))
	export RABBITMQ_MNESIA_BASE="$NODE_DIR/mnesia"
	export RABBITMQ_LOG_BASE="$NODE_DIR/log"
	export RABBITMQ_PID_FILE="$NODE_DIR/rabbitmq.pid"
	export RABBITMQ_CONFIG_FILE="$NODE_DIR/rabbitmq.conf"
	export RABBITMQ_ADVANCED_CONFIG_FILE="$NODE_DIR/advanced.config"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$NODE_DIR/enabled_plugins"
	export RABBITMQ_CONF_ENV_FILE="$NODE_DIR/rabbitmq-env.conf"
	export ERL_EPMD_ADDRESS=127.0.0.1
}

installed() { [ -x "$RMQ_BIN/rabbitmq-server" ]; }

cmd_install() {
	if installed; then
		log "rabbitmq-server already installed"
	else
		export DEBIAN_FRONTEND=noninteractive
		# Keep the package from starting the system-wide service: its maintainer
		# scripts ask invoke-rc.d, which asks policy-rc.d; 101 means "not allowed".
		local policy=/usr/sbin/policy-rc.d had_policy=0
		if [ -e "$policy" ]; then
			had_policy=1
			cp -p "$policy" "$policy.sluice-saved"
		fi
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		local rc=0
		{ apt-get install -y --no-install-recommends rabbitmq-server ||
			{ apt-get update && apt-get install -y --no-install-recommends rabbitmq-server; }; } || rc=$?
		if [ "$had_policy" = 1 ]; then
			mv -f "$policy.sluice-saved" "$policy"
		else
			rm -f "$policy"
		fi
		[ "$rc" = 0 ] || die "apt-get install rabbitmq-server failed ($rc)"
	fi
	# Belt and braces: whatever init system there is, the system node must not hold 5672.
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
		systemctl stop rabbitmq-server || true
		systemctl disable rabbitmq-server || true
	fi
	if command -v service >/dev/null 2>&1; then
		service rabbitmq-server stop >/dev/null 2>&1 || true
	fi
	# Installing may leave an epmd daemon listening on every interface; with no node
	# registered, -kill stops it. The private node starts its own on 127.0.0.1.
	if command -v epmd >/dev/null 2>&1 && ! epmd -names 2>/dev/null | grep -q '^name '; then
		epmd -kill >/dev/null 2>&1 || true
	fi
}

# accepting reports whether something accepts TCP connections on 127.0.0.1:$1.
accepting() {
	timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

running() {
	[ -f "$NODE_DIR/rabbitmq.pid" ] || return 1
	local pid
	pid="$(cat "$NODE_DIR/rabbitmq.pid" 2>/dev/null)" || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

write_config() {
	mkdir -p "$NODE_DIR/home" "$NODE_DIR/mnesia" "$NODE_DIR/log"
	chmod 700 "$NODE_DIR/home"
	{
		echo "listeners.tcp.default = 127.0.0.1:$PORT"
		echo "loopback_users.guest = true"
		echo "log.console = false"
		echo "log.file.level = info"
		if [ "$MANAGEMENT" = 1 ]; then
			echo "management.tcp.ip = 127.0.0.1"
			echo "management.tcp.port = $MGMT_PORT"
		fi
	} >"$NODE_DIR/rabbitmq.conf"
	echo "[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}]." >"$NODE_DIR/advanced.config"
	: >"$NODE_DIR/rabbitmq-env.conf"
	if [ "$MANAGEMENT" = 1 ]; then
		echo "[rabbitmq_management]." >"$NODE_DIR/enabled_plugins"
	else
		echo "[]." >"$NODE_DIR/enabled_plugins"
	fi
}

cmd_start() {
	installed || die "rabbitmq-server is not installed; run: $0 install"
	node_env
	if running && accepting "$PORT"; then
		log "node $NODENAME already running on 127.0.0.1:$PORT"
		return 0
	fi
	if accepting "$PORT"; then
		die "something else already listens on 127.0.0.1:$PORT"
	fi
	write_config
	log "starting $NODENAME on 127.0.0.1:$PORT (dir $NODE_DIR)"
	# The real server script, not Debian's wrapper, which would switch to the rabbitmq user.
	setsid "$RMQ_BIN/rabbitmq-server" >"$NODE_DIR/log/stdout.log" 2>&1 </dev/null &
	local deadline=$((SECONDS + START_TIMEOUT))
	until accepting "$PORT"; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			tail -n 30 "$NODE_DIR/log/stdout.log" >&2 || true
			die "node did not accept connections on 127.0.0.1:$PORT within ${START_TIMEOUT}s"
		fi
		sleep 0.5
	done
	# The port opens before every boot step has run; await_startup waits for the rest.
	timeout "$START_TIMEOUT" "$RMQ_BIN/rabbitmqctl" -n "$NODENAME" await_startup >/dev/null ||
		die "node $NODENAME did not finish booting within ${START_TIMEOUT}s"
	log "node $NODENAME accepts connections: $(cmd_url)"
}

cmd_stop() {
	installed || { log "rabbitmq-server is not installed"; return 0; }
	node_env
	if ! running; then
		log "node $NODENAME is not running"
		return 0
	fi
	local pid
	pid="$(cat "$NODE_DIR/rabbitmq.pid")"
	timeout 60 "$RMQ_BIN/rabbitmqctl" -n "$NODENAME" stop "$NODE_DIR/rabbitmq.pid" >/dev/null 2>&1 || {
		log "rabbitmqctl stop did not finish; killing pid $pid"
		kill -TERM "$pid" 2>/dev/null || true
	}
	local deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.5
	done
	rm -f "$NODE_DIR/rabbitmq.pid"
	# epmd outlives the node; stop it too when no other node is registered with it.
	if command -v epmd >/dev/null 2>&1 && ! epmd -names 2>/dev/null | grep -q '^name '; then
		epmd -kill >/dev/null 2>&1 || true
	fi
	log "node $NODENAME stopped"
}

cmd_status() {
	node_env
	if running && accepting "$PORT"; then
		echo "running: $NODENAME on 127.0.0.1:$PORT ($(cmd_url))"
		return 0
	fi
	echo "not running: $NODENAME (127.0.0.1:$PORT)"
	return 1
}

cmd_url() { echo "amqp://guest:guest@127.0.0.1:$PORT/"; }

# The cluster: its nodes are started one by one as single nodes, then the second and
# third join the first (rabbitmqctl join_cluster), as RabbitMQ's clustering guide does.
cluster_ports() { read -r -a ports <<<"$CLUSTER_PORTS"; [ "${#ports[@]}" -ge 2 ] || die "RABBITMQ_CLUSTER_PORTS needs two ports or more"; }

cmd_cluster_start() {
	installed || die "rabbitmq-server is not installed; run: $0 install"
	local ports p first ctl=("$RMQ_BIN/rabbitmqctl")
	cluster_ports
	mkdir -p "$BASE"
	if [ ! -s "$BASE/cluster-cookie" ]; then
		(umask 077 && head -c 30 /dev/urandom | base64 | tr -dc A-Za-z0-9 >"$BASE/cluster-cookie")
	fi
	for p in "${ports[@]}"; do
		set_node "$p"
		# Every member needs the same cookie, in its own HOME, before its first start.
		mkdir -p "$NODE_DIR/home"
		install -m 0400 "$BASE/cluster-cookie" "$NODE_DIR/home/.erlang.cookie"
		cmd_start
	done
	set_node "${ports[0]}"
	first="$NODENAME"
	for p in "${ports[@]:1}"; do
		set_node "$p"
		node_env
		if timeout 60 "${ctl[@]}" -n "$NODENAME" cluster_status --formatter json 2>/dev/null | grep -q "\"$first\""; then
			log "$NODENAME is already a member with $first"
			continue
		fi
		log "joining $NODENAME to $first"
		timeout 60 "${ctl[@]}" -n "$NODENAME" stop_app >/dev/null
		timeout 60 "${ctl[@]}" -n "$NODENAME" reset >/dev/null
		timeout 60 "${ctl[@]}" -n "$NODENAME" join_cluster "$first" >/dev/null || die "join_cluster $first failed for $NODENAME"
		timeout 60 "${ctl[@]}" -n "$NODENAME" start_app >/dev/null
		timeout "$START_TIMEOUT" "${ctl[@]}" -n "$NODENAME" await_startup >/dev/null ||
			die "$NODENAME did not boot again after joining"
	done
	cmd_cluster_status >&2
}

cmd_cluster_stop() {
	local ports p
	cluster_ports
	# The last members first, so the first node stops last, as it started first.
	for ((i = ${#ports[@]} - 1; i >= 0; i--)); do
		set_node "${ports[$i]}"
		cmd_stop
	done
}

cmd_cluster_status() {
	local ports
	cluster_ports
	set_node "${ports[0]}"
	node_env
	running && accepting "$PORT" || { echo "not running: cluster node $NODENAME (127.0.0.1:$PORT)"; return 1; }
	timeout 60 "$RMQ_BIN/rabbitmqctl" -n "$NODENAME" cluster_status
}

cmd_cluster_url() {
	local ports
	cluster_ports
	set_node "${ports[0]}"
	cmd_url
}

cmd_ctl() {
	installed || die "rabbitmq-server is not installed; run: $0 install"
	node_env
	exec timeout 60 "$RMQ_BIN/rabbitmqctl" -n "$NODENAME" "$@"
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) cmd_url ;;
ctl) shift; cmd_ctl "$@" ;;
cluster-start) cmd_cluster_start ;;
cluster-stop) cmd_cluster_stop ;;
cluster-status) cmd_cluster_status ;;
cluster-url) cmd_cluster_url ;;
*) die "usage: $0 install|start|stop|status|url|ctl ARGS|cluster-start|cluster-stop|cluster-status|cluster-url" ;;
esac
