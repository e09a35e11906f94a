#!/usr/bin/env bash
# profile-consume.sh: where a Sluice broker's time goes per consumed, requeued or
# fanned-out message. Starts a fresh `sluice serve --pprof`, runs one of
# bench-compare.sh's consume-side scenarios against it, and over a window of the
# steady part of the run reads the broker's CPU time (/proc/PID/stat), its read and
# write system calls and the bytes it wrote to disk (/proc/PID/io), its allocations (a heap profile before and
# after) and the messages it delivered (/metrics), and takes a CPU profile and an
# execution trace. Prints the figures per delivered message; the profiles stay in OUT.
#
#   scripts/profile-consume.sh consume-ack|nack-requeue|fanout
#
# Environment: OUT (default: a new temporary directory), WINDOW (seconds profiled,
# default 5), MESSAGES (pre-filled messages, default 300000), TRACE (seconds of
# execution trace after the window, default 1; 0: none), SLUICE (a built binary to use
# instead of building ./cmd/sluice), BENCH (the binary whose `sluice bench` is the
# client, default SLUICE: a newer bench against an older broker), HEADERS (headers per
# message, `sluice bench --headers`, default 0). Needs curl and go.
set -euo pipefail
cd "$(dirname "$0")/.."

scenario="${1:?usage: $0 consume-ack|nack-requeue|fanout}"
WINDOW="${WINDOW:-5}"
MESSAGES="${MESSAGES:-300000}"
TRACE="${TRACE:-1}"
work="$(mktemp -d)"
OUT="${OUT:-$work/out}"
mkdir -p "$OUT"
log() { echo "profile-consume: $*" >&2; }

if [ -z "${SLUICE:-}" ]; then
	go build -o "$work/sluice" ./cmd/sluice
	SLUICE="$work/sluice"
fi
BENCH="${BENCH:-$SLUICE}"
port=$((20000 + RANDOM % 10000))
http=$((port + 1))
pprof=$((port + 2))
"$SLUICE" serve --init --data "$work/data" --amqp "127.0.0.1:$port" --http "127.0.0.1:$http" \
	--pprof "127.0.0.1:$pprof" --log-level warn >"$work/serve.log" 2>&1 &
pid=$!
bench_pid=""
cleanup() {
	[ -z "$bench_pid" ] || kill "$bench_pid" 2>/dev/null || true
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -rf "$work/data"
}
trap cleanup EXIT
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$pprof/debug/pprof/" >/dev/null && break
	sleep 0.1
done

common=(--url "amqp://guest:guest@127.0.0.1:$port/" --size 1024 --persistent --confirms 256 --prefetch 256)
[ "${HEADERS:-0}" = 0 ] || common+=(--headers "$HEADERS")
case "$scenario" in
consume-ack) args=(--scenario backlog --backlog "$MESSAGES" --consumers 1 --duration 300s); marker="in place" ;;
nack-requeue) args=(--scenario requeue --requeues 1 --backlog "$MESSAGES" --consumers 1 --duration 300s); marker="in place" ;;
fanout) args=(--scenario publish --fanout 4 --consumers 4 --duration 60s); marker="" ;;
*) log "unknown scenario $scenario"; exit 1 ;;
esac
"$BENCH" bench "${common[@]}" "${args[@]}" --queue "profile-$scenario" >"$OUT/bench.txt" 2>&1 &
bench_pid=$!
if [ -n "$marker" ]; then
	until grep -q "$marker" "$OUT/bench.txt"; do
		kill -0 "$bench_pid" 2>/dev/null || { cat "$OUT/bench.txt"; exit 1; }
		sleep 0.1
	done
	sleep 0.5
else
	sleep 3
fi

cpu() { awk '{print $14 + $15}' "/proc/${1:-$pid}/stat"; } # utime + stime, clock ticks
sys() { awk '/^syscr/ {r = $2} /^syscw/ {w = $2} /^write_bytes/ {b = $2} END {print r, w, b}' "/proc/$pid/io"; }
delivered() {
	curl -s -u guest:guest "http://127.0.0.1:$http/metrics" |
		awk '/^rabbitmq_channel_messages_delivered_ack_total/ {n += $NF} END {printf "%d\n", n}'
}
curl -s "http://127.0.0.1:$pprof/debug/pprof/allocs" >"$OUT/allocs-before.pb.gz"
c0=$(cpu) b0=$(cpu "$bench_pid") d0=$(delivered) t0=$(date +%s.%N)
read -r r0 w0 wb0 < <(sys)
curl -s "http://127.0.0.1:$pprof/debug/pprof/profile?seconds=$WINDOW" >"$OUT/cpu.pb.gz"
c1=$(cpu) b1=$(cpu "$bench_pid") d1=$(delivered) t1=$(date +%s.%N)
read -r r1 w1 wb1 < <(sys)
curl -s "http://127.0.0.1:$pprof/debug/pprof/allocs" >"$OUT/allocs-after.pb.gz"
if [ "$TRACE" != 0 ]; then
	curl -s "http://127.0.0.1:$pprof/debug/pprof/trace?seconds=$TRACE" >"$OUT/trace.out"
fi
hz=$(getconf CLK_TCK)
n=$((d1 - d0))
[ "$n" -gt 0 ] || { log "no deliveries in the window"; exit 1; }
allocs=$(go tool pprof -sample_index=alloc_objects -base "$OUT/allocs-before.pb.gz" -top -nodecount=1 \
	"$OUT/allocs-after.pb.gz" 2>/dev/null | awk '/ total$/ {print $(NF-1)}' | head -1)
bytes=$(go tool pprof -sample_index=alloc_space -base "$OUT/allocs-before.pb.gz" -top -nodecount=1 \
	"$OUT/allocs-after.pb.gz" 2>/dev/null | awk '/ total$/ {print $(NF-1)}' | head -1)
awk -v n="$n" -v c="$((c1 - c0))" -v bc="$((b1 - b0))" -v hz="$hz" -v r="$((r1 - r0))" -v w="$((w1 - w0))" -v wb="$((wb1 - wb0))" -v t0="$t0" -v t1="$t1" \
	-v allocs="$allocs" -v bytes="$bytes" -v sc="$scenario" 'BEGIN {
	printf "%s: %d deliveries in %.1f s (%.0f/s)\n", sc, n, t1 - t0, n / (t1 - t0)
	printf "  broker CPU per delivery: %.1f us (%.0f%% of one core)\n", c / hz / n * 1e6, c / hz / (t1 - t0) * 100
	printf "  bench client (amqp091-go) CPU per delivery: %.1f us (%.0f%% of one core)\n", bc / hz / n * 1e6, bc / hz / (t1 - t0) * 100
	printf "  system calls per delivery: %.2f reads, %.2f writes (sockets and files)\n", r / n, w / n
	printf "  bytes written to disk per delivery: %.0f (WAL, flushes and compactions)\n", wb / n
	printf "  allocated in the window: %s objects, %s (sampled; divide by %d deliveries)\n", allocs, bytes, n
}'
log "profiles in $OUT (cpu.pb.gz, allocs-*.pb.gz, trace.out); bench output in $OUT/bench.txt"
