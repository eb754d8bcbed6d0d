#!/bin/sh
#
# cluster.sh: what the cluster block costs admission, loopback only.
#
# Starts bench/upstream and redis-server (on a Unix socket in a temporary
# directory, no TCP, no persistence), then the same llmgated twice, on one
# limited target (a limit far above what the machine can send, so nothing
# ever waits): once alone, once with a cluster block on that Redis, which
# feeds the target's budget in slices. For each it prints advisory lease
# pairs per second (acquire + report: admission and nothing else) with
# llmgated's CPU per pair, and plain calls per second at 16 in flight with
# its CPU per call. Those rates move with the machine's load; so, when
# valgrind is installed, it then counts instructions (callgrind), which
# load does not move: per lease pair, those spent in admission
# (admit_request() and admit_done() with all they call, the cluster's
# part included) and those of the whole daemon's event loop (start and
# exit left out).
#
# usage: bench/cluster.sh [BUILDDIR]     (default: $BUILDDIR, else .)
# Build first: make && make bench. Needs redis-server (Debian's package).
# NLEASES, NCALLS and REPEAT (best of) can be set in the environment;
# NCG, the lease pairs counted under callgrind (default 20000; 0: none).
# Benchmarks print numbers; nothing here passes or fails on speed.

set -eu

build=${1:-${BUILDDIR:-.}}
bench=$build/bench/llmgate-bench
upstream=$build/bench/upstream
daemon=$build/llmgated
cli=$build/llmgate
NLEASES=${NLEASES:-100000}
NCALLS=${NCALLS:-20000}
REPEAT=${REPEAT:-3}
NCG=${NCG:-20000}
WRAP=
MODEL="bench-model"

if ! command -v redis-server >/dev/null; then
	echo "cluster.sh: redis-server not found (apt-get install redis-server)" >&2
	exit 1
fi

. "$(dirname "$0")/common.sh"
bench_setup cluster.sh "$bench" "$upstream" "$daemon" "$cli"

# CPU ticks (user + system) of a process so far.
ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

"$upstream" -t 300 >"$tmp/up.out" 2>"$tmp/up.err" &
pids="$pids $!"
redis-server --port 0 --unixsocket "$tmp/redis.sock" --daemonize no \
    --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids="$pids $!"
i=0
while ! grep -q '^PORT ' "$tmp/up.out" 2>/dev/null || [ ! -S "$tmp/redis.sock" ]; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "cluster.sh: upstream or redis-server did not start" >&2
		exit 1
	fi
	sleep 0.05
done
port=$(sed -n 's/^PORT //p' "$tmp/up.out")

# start_daemon NAME CLUSTER_BLOCK
start_daemon() {
	sock=$tmp/$1.sock
	cat >"$tmp/$1.conf" <<EOF
socket = "$sock";
log_level = "warn";
max_conns_per_uid = 0;
providers = (
	{ name = "bench"; type = "openai";
	  base_url = "http://127.0.0.1:$port/v1"; api_key = "bench";
	  rpm = 600000000; tpm = 2000000000; }
);
$2
EOF
	$WRAP "$daemon" -c "$tmp/$1.conf" 2>"$tmp/$1.log" &
	daemon_pid=$!
	i=0
	while ! "$cli" -s "$sock" status --json 2>/dev/null |
	    grep -q "$3"; do
		i=$((i + 1))
		if [ $i -gt 200 ] || ! kill -0 "$daemon_pid" 2>/dev/null; then
			echo "cluster.sh: llmgated did not start" >&2
			cat "$tmp/$1.log" >&2
			exit 1
		fi
		sleep 0.05
	done
}

stop_daemon() {
	kill "$daemon_pid" 2>/dev/null || true
	wait "$daemon_pid" 2>/dev/null || true
	daemon_pid=
}

# measure LABEL: leases, then calls, best of REPEAT each.
measure() {
	best_l=0
	best_lcpu=0
	best_c=0
	best_ccpu=0
	r=0
	while [ $r -lt "$REPEAT" ]; do
		r=$((r + 1))
		t0=$(ticks "$daemon_pid")
		out=$("$bench" -s "$sock" -m "bench/$MODEL" -n "$NLEASES" \
		    --leases -C 4 -c 16 --json) || true
		t1=$(ticks "$daemon_pid")
		rate=$(field "$out" pairs_per_s)
		pairs=$(field "$out" pairs)
		if [ -n "$rate" ] && awk -v a="$rate" -v b="$best_l" \
		    'BEGIN { exit !(a > b) }'; then
			best_l=$rate
			best_lcpu=$(awk -v t=$((t1 - t0)) -v n="$pairs" \
			    'BEGIN { printf "%.1f", (n > 0 ? t * 10000 / n : 0) }')
		fi
		out=$("$bench" -s "$sock" -m "bench/$MODEL" -n "$NCALLS" \
		    -c 16 -T 20 --pid "$daemon_pid" --json) || true
		rate=$(field "$out" calls_per_s)
		if [ -n "$rate" ] && awk -v a="$rate" -v b="$best_c" \
		    'BEGIN { exit !(a > b) }'; then
			best_c=$rate
			best_ccpu=$(field "$out" pid_cpu_us_per_call)
		fi
	done
	printf '%-24s %12.0f %10s %12.0f %10s\n' "$1" "$best_l" \
	    "$best_lcpu" "$best_c" "$best_ccpu"
}

echo "llmgate cluster benchmark: $(nproc 2>/dev/null || echo '?') CPUs," \
    "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')" \
    "on a Unix socket"
printf '%-24s %12s %10s %12s %10s\n' "" "lease pairs/s" "CPU us" \
    "calls/s c16" "CPU us"
start_daemon single "" '"version"'
measure "one host, no cluster"
stop_daemon
start_daemon cluster "cluster = { redis = \"unix:$tmp/redis.sock\"; host = \"bench\"; };" \
    '"state": *"up"'
measure "cluster block, Redis up"
stop_daemon

# Instructions, counted by callgrind: count LABEL CLUSTER_BLOCK READY
# runs NCG lease pairs twice under it, once counting only admission, once
# the whole event loop, and prints both per pair.
count_one() {
	WRAP="valgrind --tool=callgrind --callgrind-out-file=$tmp/cg.out $1"
	rm -f "$tmp/cg.out"
	start_daemon cg "$2" "$3"
	"$bench" -s "$sock" -m "bench/$MODEL" -n "$NCG" --leases -C 4 \
	    -c 16 --json >"$tmp/cg.json" || true
	stop_daemon
	WRAP=
	pairs=$(field "$(cat "$tmp/cg.json")" pairs)
	ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$tmp/cg.out")
	if [ -z "$pairs" ] || [ "$pairs" -eq 0 ] || [ -z "$ir" ]; then
		echo "cluster.sh: callgrind run failed" >&2
		exit 1
	fi
	awk -v i="$ir" -v n="$pairs" 'BEGIN { printf "%.0f", i / n }'
}

count() {
	adm=$(count_one "--collect-atstart=no --toggle-collect=admit_request \
--toggle-collect=admit_done" "$2" "$3")
	all=$(count_one "--collect-atstart=no \
--toggle-collect=event_base_dispatch" "$2" "$3")
	printf '%-24s %18s %18s\n' "$1" "$adm" "$all"
}

if [ "$NCG" -gt 0 ] && command -v valgrind >/dev/null; then
	echo
	echo "instructions per lease pair (callgrind, $NCG pairs, 16 in flight):"
	printf '%-24s %18s %18s\n' "" "admission" "event loop"
	count "one host, no cluster" "" '"version"'
	count "cluster block, Redis up" \
	    "cluster = { redis = \"unix:$tmp/redis.sock\"; host = \"bench\"; };" \
	    '"state": *"up"'
fi
