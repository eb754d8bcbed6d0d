#!/bin/sh
#
# stream-load.sh: many concurrent slow streamed calls through llmgated.
#
# Starts bench/upstream streaming slowly (TOKENS tokens, one every
# INTERVAL_MS: by default 400 every 50 ms, 20 s a call) and llmgated in a
# temporary directory, then CLIENTS bench/stream-load processes, each with
# its share of CALLS streamed calls in flight on one connection, plus one
# deliberately slow reader with SLOW_CALLS calls that reads what llmgated
# sends at most SLOW_BYTES every SLOW_MS (16 KiB/s by default, about a
# quarter of what its calls stream), so its queue in llmgated grows (past
# half of MAX_OUTPUT, llmgated's default 8 MiB, its streams are paused
# upstream). Prints, per client, whether every call got
# all of its text exactly once, and llmgated's peak resident memory (VmHWM,
# and VmRSS sampled while the calls are in flight), memory per call in
# flight, and CPU time (user + system) in all and per call.
#
# usage: bench/stream-load.sh [BUILDDIR]   (default: $BUILDDIR, else .)
# Build first: make && make bench. Quick run:
#   CALLS=200 TOKENS=20 bench/stream-load.sh .
# Benchmarks print numbers; nothing here passes or fails on speed.

set -eu

build=${1:-${BUILDDIR:-.}}
load=$build/bench/stream-load
upstream=$build/bench/upstream
daemon=$build/llmgated
CALLS=${CALLS:-10000}
CLIENTS=${CLIENTS:-8}
TOKENS=${TOKENS:-400}
INTERVAL_MS=${INTERVAL_MS:-50}
SLOW_CALLS=${SLOW_CALLS:-100}
SLOW_MS=${SLOW_MS:-250}
SLOW_BYTES=${SLOW_BYTES:-4096}
MAX_OUTPUT=${MAX_OUTPUT:-8388608}
LOG_LEVEL=${LOG_LEVEL:-warn}

. "$(dirname "$0")/common.sh"
bench_setup stream-load.sh "$load" "$upstream" "$daemon"

# A descriptor per call in llmgated (its upstream connection) and upstream.
# shellcheck disable=SC3045	# dash, bash and busybox sh all have -H -n
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

secs=$(( (TOKENS * INTERVAL_MS) / 1000 ))
"$upstream" -n "$TOKENS" -i "$INTERVAL_MS" -t $((secs * 4 + 300)) \
    >"$tmp/up.out" 2>"$tmp/up.err" &
up_pid=$!
pids="$pids $!"
i=0
while ! grep -q '^PORT ' "$tmp/up.out" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "stream-load.sh: upstream did not start" >&2
		cat "$tmp/up.err" >&2
		exit 1
	fi
	sleep 0.05
done
port=$(sed -n 's/^PORT //p' "$tmp/up.out")

sock=$tmp/gated.sock
total=$((CALLS + SLOW_CALLS))
cat >"$tmp/gated.conf" <<EOF
socket = "$sock";
log_level = "$LOG_LEVEL";
max_inflight = $((total + 16));
max_conns_per_uid = 0;
max_calls_per_uid = 0;
max_frame = 65536;
max_output = $MAX_OUTPUT;
max_memory = 0;
providers = (
	{ name = "slow"; type = "openai";
	  base_url = "http://127.0.0.1:$port/v1"; api_key = "bench";
	  timeout_ms = 0; idle_ms = 0; }
);
EOF
"$daemon" -c "$tmp/gated.conf" 2>"$tmp/gated.log" &
daemon_pid=$!
i=0
while [ ! -S "$sock" ]; do
	i=$((i + 1))
	if [ $i -gt 200 ] || ! kill -0 "$daemon_pid" 2>/dev/null; then
		echo "stream-load.sh: llmgated did not start" >&2
		cat "$tmp/gated.log" >&2
		exit 1
	fi
	sleep 0.05
done

status_kib() {
	sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$daemon_pid/status"
}
# utime + stime, in clock ticks: fields 14 and 15, counted after the ')'.
cpu_ticks() {
	sed 's/.*) //' "/proc/${1:-$daemon_pid}/stat" | awk '{ print $12 + $13 }'
}
tick=$(getconf CLK_TCK)
rss0=$(status_kib VmRSS)
cpu0=$(cpu_ticks)
ucpu0=$(cpu_ticks "$up_pid")
start=$(date +%s)

echo "llmgate stream load: $(nproc 2>/dev/null || echo '?') CPUs," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$CALLS calls from $CLIENTS clients + $SLOW_CALLS from one slow reader" \
    "(reads $SLOW_BYTES bytes every $SLOW_MS ms); $TOKENS tokens every" \
    "$INTERVAL_MS ms a call; max_output $MAX_OUTPUT"

c=0
while [ $c -lt "$CLIENTS" ]; do
	n=$((CALLS / CLIENTS))
	[ $c -lt $((CALLS % CLIENTS)) ] && n=$((n + 1))
	"$load" -s "$sock" -m "slow/bench-model" -n "$n" -k "$TOKENS" \
	    >"$tmp/client$c.out" 2>&1 &
	pids="$pids $!"
	c=$((c + 1))
done
if [ "$SLOW_CALLS" -gt 0 ]; then
	"$load" -s "$sock" -m "slow/bench-model" -n "$SLOW_CALLS" \
	    -k "$TOKENS" -S "$SLOW_MS" -B "$SLOW_BYTES" >"$tmp/slow.out" 2>&1 &
	pids="$pids $!"
fi

# Sample the daemon while the clients run.
peak=0
while :; do
	r=$(status_kib VmRSS)
	[ -n "$r" ] && [ "$r" -gt "$peak" ] && peak=$r
	# A client is done when it has printed its line.
	done_n=0
	for f in "$tmp"/client*.out "$tmp/slow.out"; do
		[ -f "$f" ] && grep -q 'calls=' "$f" && done_n=$((done_n + 1))
	done
	want=$CLIENTS
	[ "$SLOW_CALLS" -gt 0 ] && want=$((want + 1))
	[ $done_n -ge $want ] && break
	if ! kill -0 "$daemon_pid" 2>/dev/null; then
		echo "stream-load.sh: llmgated died" >&2
		cat "$tmp/gated.log" >&2
		break
	fi
	sleep 0.5
done
hwm=$(status_kib VmHWM)
cpu1=$(cpu_ticks)
ucpu1=$(cpu_ticks "$up_pid")
wall=$(($(date +%s) - start))

echo
c=0
while [ $c -lt "$CLIENTS" ]; do
	printf 'client %-4s %s\n' "$c" "$(cat "$tmp/client$c.out")"
	c=$((c + 1))
done
[ "$SLOW_CALLS" -gt 0 ] && printf 'slow        %s\n' "$(cat "$tmp/slow.out")"
cat "$tmp"/client*.out "$tmp/slow.out" 2>/dev/null | awk '
{
	for (i = 1; i <= NF; i++) {
		split($i, kv, "=")
		v[kv[1]] += kv[2]
	}
}
END {
	printf "all         calls=%d ok=%d failed=%d garbled=%d " \
	    "unanswered=%d\n", v["calls"], v["ok"], v["failed"], v["garbled"],
	    v["unanswered"]
}'
echo
awk -v rss0="$rss0" -v peak="$peak" -v hwm="$hwm" -v n="$total" \
    -v cpu="$((cpu1 - cpu0))" -v tick="$tick" 'BEGIN {
	printf "llmgated VmRSS before %d KiB, peak sampled %d KiB, VmHWM %d KiB\n",
	    rss0, peak, hwm
	printf "memory per call in flight: %.1f KiB ((VmHWM - before) / %d)\n",
	    (hwm - rss0) / n, n
	printf "llmgated CPU: %.2f s user+system, %.0f us per call, " \
	    "%.1f us per token\n", cpu / tick, cpu / tick * 1e6 / n,
	    cpu / tick * 1e6 / n / '"$TOKENS"'
}'
awk -v u="$((ucpu1 - ucpu0))" -v tick="$tick" -v w="$wall" 'BEGIN {
	printf "upstream CPU: %.2f s; whole run about %d s wall (%d s if " \
	    "on time)\n", u / tick, w, '"$secs"'
}'
if grep -qv ' info: \| debug: ' "$tmp/gated.log"; then
	echo "llmgated log, first warnings and drops:"
	grep -v ' info: \| debug: ' "$tmp/gated.log" | head -5
fi
grep 'dropped' "$tmp/gated.log" | head -3 || true
