#!/usr/bin/env bash
# bench-compare.sh: run the same `sluice bench` scenarios against a Sluice broker and
# against a private RabbitMQ node on this machine, one broker after the other, and
# print one table. The method and past figures are in docs/benchmarks.md.
#
#   scripts/bench-compare.sh             full size: 20 s timed runs, a 1,000,000-message
#                                        backlog (several minutes per broker)
#   QUICK=1 scripts/bench-compare.sh     small sizes, to check the script (about a minute)
#
# Environment:
#   TARGETS           brokers to measure, in order (default "sluice rabbitmq"); also
#                     sluice-cluster (three `sluice serve` nodes on loopback) and
#                     rabbitmq-cluster (scripts/rabbitmq-local.sh cluster-start), whose
#                     queues are quorum queues declared on the first node
#   RATIOS            pairs A/B of targets whose headline figures to divide (default
#                     "sluice/rabbitmq" when both are measured)
#   DURATION          time bound of each timed run (default 20s; QUICK: 3s)
#   BACKLOG           messages of the backlog scenario (default 1000000; QUICK: 5000)
#   BACKLOG_DURATION  time bound of the backlog's fill and of its drain each (default 300s)
#   CHURN_MESSAGES    messages of the churn scenario (default 20000; QUICK: 1000)
#   CONSUME_MESSAGES  messages the consume-ack and nack-requeue scenarios pre-fill the
#                     queue with (default 300000; QUICK: 5000)
#   LATENCY_RATE      steady publish rate of the latency scenario (default 5000 msg/s)
#   RABBITMQ_PORT     port of the private RabbitMQ node (default 5681)
#   RABBITMQ_BASE     its directory, as scripts/rabbitmq-local.sh uses it
#   CLIENT            the bench's publishing client: amqp091-go (default) or batching (see
#                     `sluice bench --help` and docs/benchmarks.md)
#   SCENARIOS         runs to make, in order (default "publish publish-consume backlog churn");
#                     "consume" is short for the consume side of issue 16:
#                     "publish consume-ack nack-requeue fanout latency"
#   ROUNDS            how many times to measure every target, alternating them, so a noisy
#                     machine shows as spread between rounds (default 1)
#   OUT               directory for the JSON results (default: a new temporary directory)
#
# Sluice is built from ./cmd/sluice and started as `sluice serve --init --data <tmpdir> --amqp
# 127.0.0.1:<free port>` (a built binary rather than `go run`, so that --pid names the
# broker and not the go tool). RabbitMQ must be installed (scripts/rabbitmq-local.sh
# install); the script starts the private node when it is not running and stops it again
# afterwards. Needs jq for the table.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${QUICK:-0}" = 1 ]; then
	DURATION="${DURATION:-3s}"
	BACKLOG="${BACKLOG:-5000}"
	BACKLOG_DURATION="${BACKLOG_DURATION:-60s}"
	CHURN_MESSAGES="${CHURN_MESSAGES:-1000}"
	CONSUME_MESSAGES="${CONSUME_MESSAGES:-5000}"
fi
TARGETS="${TARGETS:-sluice rabbitmq}"
SCENARIOS="${SCENARIOS:-publish publish-consume backlog churn}"
[ "$SCENARIOS" != consume ] || SCENARIOS="publish consume-ack nack-requeue fanout latency"
CONSUME_MESSAGES="${CONSUME_MESSAGES:-300000}"
LATENCY_RATE="${LATENCY_RATE:-5000}"
ROUNDS="${ROUNDS:-1}"
CLIENT="${CLIENT:-amqp091-go}"
DURATION="${DURATION:-20s}"
BACKLOG="${BACKLOG:-1000000}"
BACKLOG_DURATION="${BACKLOG_DURATION:-300s}"
CHURN_MESSAGES="${CHURN_MESSAGES:-20000}"
RABBITMQ_PORT="${RABBITMQ_PORT:-5681}"
export RABBITMQ_PORT
RABBITMQ_BASE="${RABBITMQ_BASE:-/tmp/sluice-rabbitmq}"
export RABBITMQ_BASE

log() { echo "bench-compare: $*" >&2; }
die() { log "$*"; exit 1; }

command -v jq >/dev/null || die "needs jq (apt-get install jq)"

work="$(mktemp -d)"
OUT="${OUT:-$work/results}"
mkdir -p "$OUT"
sluice_pid=""
cluster_pids=()
started_rabbitmq=0
started_rabbitmq_cluster=0

cleanup() {
	if [ -n "$sluice_pid" ] && kill -0 "$sluice_pid" 2>/dev/null; then
		kill -TERM "$sluice_pid" 2>/dev/null || true
		wait "$sluice_pid" 2>/dev/null || true
	fi
	stop_sluice_cluster
	if [ "$started_rabbitmq" = 1 ]; then
		scripts/rabbitmq-local.sh stop || true
	fi
	if [ "$started_rabbitmq_cluster" = 1 ]; then
		scripts/rabbitmq-local.sh cluster-stop || true
	fi
	rm -rf "$work/data" "$work/bin"
}
trap cleanup EXIT

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		if ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

await_port() {
	local port=$1 deadline=$((SECONDS + 60))
	until timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; do
		[ "$SECONDS" -lt "$deadline" ] || die "nothing accepts on 127.0.0.1:$port after 60s"
		sleep 0.2
	done
}

mkdir -p "$work/bin"
log "building ./cmd/sluice"
go build -o "$work/bin/sluice" ./cmd/sluice
BENCH=("$work/bin/sluice" bench)

start_sluice() {
	local port http
	port="$(free_port)"
	http="$(free_port)"
	mkdir -p "$work/data"
	"$work/bin/sluice" serve --init --data "$work/data" --amqp "127.0.0.1:$port" --http "127.0.0.1:$http" \
		--log-level warn >"$work/sluice.log" 2>&1 &
	sluice_pid=$!
	await_port "$port"
	URL="amqp://guest:guest@127.0.0.1:$port/"
	PID="$sluice_pid"
}

stop_sluice() {
	kill -TERM "$sluice_pid" 2>/dev/null || true
	wait "$sluice_pid" 2>/dev/null || true
	sluice_pid=""
	rm -rf "$work/data"
}

# start_sluice_cluster starts three nodes of one cluster; the bench talks to the first,
# which declares the quorum queue and so leads it.
start_sluice_cluster() {
	local i spec="" amqp=() http=() raft
	for i in 1 2 3; do
		amqp+=("$(free_port)")
		http+=("$(free_port)")
		raft="$(free_port)"
		spec="${spec:+$spec,}n$i=127.0.0.1:$raft"
	done
	for i in 1 2 3; do
		mkdir -p "$work/data/n$i"
		"$work/bin/sluice" serve --data "$work/data/n$i" --amqp "127.0.0.1:${amqp[$i - 1]}" \
			--http "127.0.0.1:${http[$i - 1]}" --node "n$i" --cluster "$spec" --log-level warn \
			>"$work/sluice-n$i.log" 2>&1 &
		cluster_pids+=($!)
	done
	for i in 1 2 3; do
		await_port "${amqp[$i - 1]}"
	done
	URL="amqp://guest:guest@127.0.0.1:${amqp[0]}/"
	PID="${cluster_pids[0]}"
}

stop_sluice_cluster() {
	local pid
	for pid in "${cluster_pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${cluster_pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	cluster_pids=()
	rm -rf "$work/data"
}

start_rabbitmq_cluster() {
	if ! scripts/rabbitmq-local.sh cluster-status >/dev/null 2>&1; then
		scripts/rabbitmq-local.sh cluster-start >/dev/null
		started_rabbitmq_cluster=1
	fi
	URL="$(scripts/rabbitmq-local.sh cluster-url)"
	local ports
	read -r -a ports <<<"${RABBITMQ_CLUSTER_PORTS:-5691 5692 5693}"
	PID="$(cat "$RABBITMQ_BASE/node-${ports[0]}/rabbitmq.pid")"
}

stop_rabbitmq_cluster() {
	if [ "$started_rabbitmq_cluster" = 1 ]; then
		scripts/rabbitmq-local.sh cluster-stop
		started_rabbitmq_cluster=0
	fi
}

start_rabbitmq() {
	if ! scripts/rabbitmq-local.sh status >/dev/null; then
		scripts/rabbitmq-local.sh start
		started_rabbitmq=1
	fi
	URL="$(scripts/rabbitmq-local.sh url)"
	PID="$(cat "$RABBITMQ_BASE/node-$RABBITMQ_PORT/rabbitmq.pid")"
}

stop_rabbitmq() {
	if [ "$started_rabbitmq" = 1 ]; then
		scripts/rabbitmq-local.sh stop
		started_rabbitmq=0
	fi
}

# bench NAME ARGS...: one run, its JSON kept as $OUT/<target>-NAME-<round>.json.
bench() {
	local name=$1
	shift
	local qtype=()
	case "$target" in *-cluster) qtype=(--queue-type quorum) ;; esac
	log "$target: round $round: $name: ${BENCH[*]} --url <url> --queue bench-compare-$name ${qtype[*]} $*"
	if ! "${BENCH[@]}" --url "$URL" --queue "bench-compare-$name" "${qtype[@]}" --client "$CLIENT" --json "$@" >"$OUT/$target-$name-$round.json"; then
		log "$target: $name FAILED; it is left out of the table"
		rm -f "$OUT/$target-$name-$round.json"
		failures=$((failures + 1))
	fi
}
failures=0

# scenario NAME: the run NAME of the method in docs/benchmarks.md.
scenario() {
	case "$1" in
	publish)
		bench publish --scenario publish --publishers 1 --size 1024 --persistent --confirms 256 \
			--duration "$DURATION" ;;
	publish-consume)
		bench publish-consume --scenario publish --publishers 1 --consumers 1 --size 1024 --persistent \
			--confirms 256 --prefetch 256 --duration "$DURATION" ;;
	backlog)
		bench backlog --scenario backlog --backlog "$BACKLOG" --publishers 1 --consumers 1 --size 1024 \
			--persistent --confirms 256 --prefetch 256 --duration "$BACKLOG_DURATION" --pid "$PID" ;;
	churn)
		bench churn --scenario churn --requeues 3 --messages "$CHURN_MESSAGES" --publishers 1 --consumers 1 \
			--size 1024 --persistent --confirms 256 --prefetch 256 --duration "$DURATION" ;;
	consume-ack)
		# Consume with acks from a pre-filled queue: the drain phase is the figure.
		bench consume-ack --scenario backlog --backlog "$CONSUME_MESSAGES" --publishers 1 --consumers 1 \
			--size 1024 --persistent --confirms 256 --prefetch 256 --duration "$BACKLOG_DURATION" ;;
	nack-requeue)
		# Every message of a pre-filled queue nacked with requeue once, then acked.
		bench nack-requeue --scenario requeue --requeues 1 --backlog "$CONSUME_MESSAGES" --publishers 1 \
			--consumers 1 --size 1024 --persistent --confirms 256 --prefetch 256 --duration "$BACKLOG_DURATION" ;;
	fanout)
		bench fanout --scenario publish --fanout 4 --publishers 1 --consumers 4 --size 1024 --persistent \
			--confirms 256 --prefetch 256 --duration "$DURATION" ;;
	latency)
		# A steady load well below capacity: publish->delivery latency is the figure.
		bench latency --scenario publish --rate "$LATENCY_RATE" --publishers 1 --consumers 1 --size 1024 \
			--persistent --confirms 256 --prefetch 256 --duration "$DURATION" ;;
	*) die "unknown scenario $1 (want publish, publish-consume, backlog, churn, consume-ack, nack-requeue, fanout or latency)" ;;
	esac
}

for round in $(seq "$ROUNDS"); do
	for target in $TARGETS; do
		log "$target: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
		case "$target" in
		sluice) start_sluice ;;
		rabbitmq) start_rabbitmq ;;
		sluice-cluster) start_sluice_cluster ;;
		rabbitmq-cluster) start_rabbitmq_cluster ;;
		*) die "unknown target $target (want sluice, rabbitmq, sluice-cluster or rabbitmq-cluster)" ;;
		esac
		for name in $SCENARIOS; do
			scenario "$name"
		done
		case "$target" in
		sluice) stop_sluice ;;
		rabbitmq) stop_rabbitmq ;;
		sluice-cluster) stop_sluice_cluster ;;
		rabbitmq-cluster) stop_rabbitmq_cluster ;;
		esac
	done
done

log "JSON results in $OUT (publishing client: $CLIENT)"
{
	printf 'run\tbroker\tsecs\tsent/s\tconfirmed/s\tconsumed/s\tacked/s\tconfirm p50/p99 ms\tconsume p50/p99 ms\tRSS MiB\tcomplete\n'
	for name in $SCENARIOS; do
		for round in $(seq "$ROUNDS"); do
			for target in $TARGETS; do
				f="$OUT/$target-$name-$round.json"
				[ -s "$f" ] || continue
				label="$name"
				[ "$ROUNDS" = 1 ] || label="$name (round $round)"
				jq -r --arg name "$label" --arg target "$target" '
					def r: . * 10 | round / 10;
					def lat: if .count == 0 then "-" else "\(.p50_ms | r)/\(.p99_ms | r)" end;
					def mib: if . == null or . == 0 then "-" else (. / 1048576 | round | tostring) end;
					. as $res | .phases[] |
					[ (if ($res.phases | length) > 1 then $name + " " + .name else $name end),
					  $target, (.duration_s | r),
					  (.sent_per_s | round), (.confirmed_per_s | round),
					  (.consumed_per_s | round), (.acked_per_s | round),
					  (.confirm_latency | lat), (.consume_latency | lat),
					  (if .name == "fill" then ($res.memory.rss_after_fill_bytes | mib)
					   elif .name == "drain" then ($res.memory.rss_peak_sampled_bytes | mib) + " peak"
					   else "-" end),
					  (if .target then (if .complete then "yes" else "NO" end) else "timed" end)
					] | @tsv' "$f"
			done
		done
	done
} | column -t -s "$(printf '\t')"

# headline NAME: a jq expression for the one figure of run NAME the comparison is about.
headline() {
	case "$1" in
	publish | fanout) echo '.phases[0].confirmed_per_s' ;;
	publish-consume) echo '.phases[0].consumed_per_s' ;;
	churn) echo '.phases[0].acked_per_s' ;;
	backlog | consume-ack | nack-requeue) echo '.phases[1].acked_per_s' ;;
	latency) echo '.phases[0].consume_latency.p99_ms' ;;
	esac
}
headline_unit() {
	case "$1" in
	publish | fanout) echo "msg/s confirmed" ;;
	publish-consume) echo "msg/s consumed" ;;
	churn | nack-requeue) echo "msg/s completed (acked)" ;;
	backlog | consume-ack) echo "msg/s drained (acked)" ;;
	latency) echo "p99 publish->delivery ms" ;;
	esac
}

# median TARGET NAME: the median of the headline figure over the rounds.
median() {
	local expr files=()
	expr="$(headline "$2")"
	for round in $(seq "$ROUNDS"); do
		[ -s "$OUT/$1-$2-$round.json" ] && files+=("$OUT/$1-$2-$round.json")
	done
	[ "${#files[@]}" -gt 0 ] || { echo "-"; return; }
	jq -s "[.[] | $expr] | sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end | . * 10 | round / 10" "${files[@]}"
}

if [ -z "${RATIOS:-}" ] && [[ " $TARGETS " == *" sluice "* && " $TARGETS " == *" rabbitmq "* ]]; then
	RATIOS="sluice/rabbitmq"
fi
for pair in ${RATIOS:-}; do
	a_target="${pair%/*}"
	b_target="${pair#*/}"
	echo
	echo "median of $ROUNDS round(s), $a_target / $b_target (latency: $b_target / $a_target):"
	{
		printf 'run\tfigure\t%s\t%s\tratio\n' "$a_target" "$b_target"
		for name in $SCENARIOS; do
			a="$(median "$a_target" "$name")"
			b="$(median "$b_target" "$name")"
			ratio="-"
			if [ "$a" != "-" ] && [ "$b" != "-" ]; then
				if [ "$name" = latency ]; then
					ratio="$(jq -n "if $a == 0 then \"-\" else ($b / $a * 100 | round / 100 | tostring) + \"x\" end" -r)"
				else
					ratio="$(jq -n "if $b == 0 then \"-\" else ($a / $b * 100 | round / 100 | tostring) + \"x\" end" -r)"
				fi
			fi
			printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$(headline_unit "$name")" "$a" "$b" "$ratio"
		done
	} | column -t -s "$(printf '\t')"
done
[ "$failures" = 0 ] || die "$failures run(s) failed"
