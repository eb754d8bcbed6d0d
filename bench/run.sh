#!/bin/sh
#
# run.sh: llmgated's benchmarks, loopback only, in well under two minutes.
#
# Starts bench/upstream (a canned OpenAI-compatible server) and llmgated in
# a temporary directory, then prints:
#   - latency and throughput straight at the upstream and through llmgated,
#     at concurrency 1 and 16, plain and streamed, and the daemon's overhead;
#   - advisory lease acquire+report pairs per second (or why not), from
#     one process and from LEASE_CONNS processes at once (one connection
#     each, as separate programs sharing a key), one pair at a time on each
#     and then LEASE_INFLIGHT at a time (the asynchronous API);
#   - llmgated's resident memory per idle client and per streamed call in
#     flight, each on a freshly started daemon (a daemon that already ran
#     a load would reuse freed memory and look cheaper than it is); the
#     calls in flight stream from a second upstream that holds every reply
#     15 s after its first chunk, and are cancelled once measured.
#
# usage: bench/run.sh [BUILDDIR]     (default: $BUILDDIR, else .)
# Build first: make && make bench. Sizes can be changed through the
# environment: N1, N16 (calls at concurrency 1 and 16), CONNS (connections
# llmgated is driven over at concurrency 16), LEASE_CONNS, LEASE_INFLIGHT,
# REPEAT (each load runs that
# many times and the best, by calls/s, is shown: on a shared machine the
# scheduler makes single runs vary), IDLE, HOLD, LOG_LEVEL.
# Benchmarks print numbers; nothing here passes or fails on speed.

set -eu

build=${1:-${BUILDDIR:-.}}
bench=$build/bench/llmgate-bench
upstream=$build/bench/upstream
daemon=$build/llmgated
N1=${N1:-5000}
N16=${N16:-20000}
CONNS=${CONNS:-1}
LEASE_CONNS=${LEASE_CONNS:-16}
LEASE_INFLIGHT=${LEASE_INFLIGHT:-4}
REPEAT=${REPEAT:-3}
IDLE=${IDLE:-10000}
HOLD=${HOLD:-1000}
LOG_LEVEL=${LOG_LEVEL:-warn}
MODEL="bench-model"

. "$(dirname "$0")/common.sh"
bench_setup run.sh "$bench" "$upstream" "$daemon"

# Idle clients and held calls need a descriptor each, in every process.
# shellcheck disable=SC3045	# dash, bash and busybox sh all have -H -n
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# start_upstream NAME [ARGS]: starts it; its port is then in $tmp/NAME.out.
start_upstream() {
	name=$1
	shift
	"$upstream" -t 110 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	pids="$pids $!"
	i=0
	while ! grep -q '^PORT ' "$tmp/$name.out" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			echo "run.sh: upstream $name did not start" >&2
			cat "$tmp/$name.err" >&2
			exit 1
		fi
		sleep 0.05
	done
}

# start_daemon NAME: a fresh llmgated with providers bench (answers at
# once) and held (holds every reply, see upstream -d).
start_daemon() {
	conf=$tmp/$1.conf
	sock=$tmp/$1.sock
	cat >"$conf" <<EOF
socket = "$sock";
log_level = "$LOG_LEVEL";
max_clients = $((IDLE + 64));
max_conns_per_uid = 0;
providers = (
	{ name = "bench"; type = "openai";
	  base_url = "http://127.0.0.1:$fast_port/v1"; api_key = "bench"; },
	{ name = "held"; type = "openai";
	  base_url = "http://127.0.0.1:$held_port/v1"; api_key = "bench";
	  idle_ms = 60000; }
);
routes = ( { name = "default"; targets = [ "bench/$MODEL" ]; } );
EOF
	"$daemon" -c "$conf" 2>"$tmp/$1.log" &
	daemon_pid=$!
	i=0
	while [ ! -S "$sock" ]; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$daemon_pid" 2>/dev/null; then
			echo "run.sh: llmgated did not start" >&2
			cat "$tmp/$1.log" >&2
			exit 1
		fi
		sleep 0.05
	done
	sleep 0.1
}

stop_daemon() {
	kill "$daemon_pid" 2>/dev/null || true
	wait "$daemon_pid" 2>/dev/null || true
	daemon_pid=
}

start_upstream fast
start_upstream held -d 15000
fast_port=$(sed -n 's/^PORT //p' "$tmp/fast.out")
held_port=$(sed -n 's/^PORT //p' "$tmp/held.out")
echo "llmgate benchmarks: $(nproc 2>/dev/null || echo '?') CPUs," \
    "upstream 127.0.0.1:$fast_port, llmgated log level $LOG_LEVEL"
echo

# Latency and throughput: direct vs through llmgated.
start_daemon load
direct_url=http://127.0.0.1:$fast_port/v1
rows=
for c in 1 16; do
	if [ "$c" = 1 ]; then n=$N1; else n=$N16; fi
	for kind in plain stream; do
		flag=
		[ "$kind" = stream ] && flag=--stream
		d=$(best "$bench" --direct "$direct_url" -m "bench/$MODEL" -n "$n" \
		    -c "$c" $flag -T 20 --json)
		g=$(best "$bench" -s "$sock" -m "bench/$MODEL" -n "$n" -c "$c" \
		    -C "$CONNS" $flag -T 20 --pid "$daemon_pid" --json)
		rows="$rows$kind $c $(field "$d" calls_per_s) \
$(field "$g" calls_per_s) $(field "$d" p50_us) $(field "$g" p50_us) \
$(field "$d" p99_us) $(field "$g" p99_us) $(field "$d" max_us) \
$(field "$g" max_us) $(field "$g" pid_cpu_us_per_call) $(field "$d" failed) \
$(field "$g" failed)
"
	done
done
leases1=$("$bench" -s "$sock" -m "bench/$MODEL" -n 10000 --leases) || true
leases=$("$bench" -s "$sock" -m "bench/$MODEL" -n 100000 --leases \
    -C "$LEASE_CONNS") || true
leasesp=$("$bench" -s "$sock" -m "bench/$MODEL" -n 200000 --leases \
    -C "$LEASE_CONNS" -c "$LEASE_INFLIGHT") || true
stop_daemon

printf '%s' "$rows" | awk '
BEGIN {
	f = "%-6s %3s %8s %8s %5s %6s %6s %6s %6s %6s %6s %6s %6s %5s %7s\n"
	printf f, "", "c", "direct", "gated", "ratio", "p50", "p50", "+p50",
	    "p99", "p99", "+p99", "max", "max", "CPU", "failed"
	printf f, "", "", "calls/s", "calls/s", "", "direct", "gated", "",
	    "direct", "gated", "", "direct", "gated", "/call", "d/g"
}
NF == 13 {
	ratio = $3 > 0 ? $4 / $3 : 0
	printf "%-6s %3d %8.0f %8.0f %5.2f %6d %6d %6d %6d %6d %6d %6d %6d " \
	    "%5.1f %7s\n", $1, $2, $3, $4, ratio, $5, $6, $6 - $5, $7, $8,
	    $8 - $7, $9, $10, $11, $12 "/" $13
}
NF != 13 { printf "%-6s %3s  (a run failed: no numbers)\n", $1, $2 }'
echo "best of $REPEAT runs each; latencies in us; ratio: llmgated calls/s" \
    "over direct calls/s; CPU: llmgated's user+system us per call; direct:" \
    "libcurl multi with the daemon's request and transfer options"
echo
echo "$leases1"
echo "$leases"
echo "$leasesp"
echo

# Memory: a fresh daemon for each measure.
start_daemon idle
idle=$("$bench" -s "$sock" --idle "$IDLE" --pid "$daemon_pid" --json) || true
stop_daemon
start_daemon hold
hold=$("$bench" -s "$sock" -m "held/$MODEL" --hold "$HOLD" -C 10 --stream \
    --pid "$daemon_pid" --json) || true
sleep 0.2
stop_daemon

printf '%-28s %8s %10s %10s %9s\n' "llmgated memory (VmRSS)" count \
    "before KiB" "after KiB" "KiB each"
printf '%-28s %8s %10s %10s %9s\n' "idle clients" "$(field "$idle" count)" \
    "$(field "$idle" rss_before_kib)" "$(field "$idle" rss_after_kib)" \
    "$(field "$idle" kib_each)"
printf '%-28s %8s %10s %10s %9s\n' "streamed calls in flight" \
    "$(field "$hold" count)" "$(field "$hold" rss_before_kib)" \
    "$(field "$hold" rss_after_kib)" "$(field "$hold" kib_each)"
for j in "$idle" "$hold"; do
	case $j in
	*'"error"'*)
		printf '  note: %s\n' "$(printf '%s' "$j" |
		    sed -n 's/.*"error": "\(.*\)"}.*/\1/p')"
		;;
	esac
done
