#!/bin/sh
#
# python.sh: the Python client against the C client on the same daemon.
#
# Starts bench/upstream (a canned OpenAI-compatible server) and llmgated in
# a temporary directory, then runs the same load (plain calls, one
# connection, concurrency 1 and 16) from bench/llmgate-bench (libllmgate)
# and from bench/python_bench.py (llmgate.Client with threads, and
# llmgate.AsyncClient with tasks), and prints calls per second, p50 and
# p99 latency and what Python adds to the median.
#
# usage: bench/python.sh [BUILDDIR]    (default: $BUILDDIR, else .)
# Build first: make && make bench. N1, N16: calls at concurrency 1 and 16;
# REPEAT: runs of each load, the best (by calls/s) is shown (default 3: on
# a shared machine single runs vary); PYTHON: the interpreter (default
# /usr/bin/python3, which sees Debian's python3-msgpack). Benchmarks print
# numbers; nothing passes or fails.

set -eu

build=${1:-${BUILDDIR:-.}}
src=$(cd "$(dirname "$0")/.." && pwd)
bench=$build/bench/llmgate-bench
upstream=$build/bench/upstream
daemon=$build/llmgated
python=${PYTHON:-/usr/bin/python3}
N1=${N1:-3000}
N16=${N16:-10000}
REPEAT=${REPEAT:-3}
MODEL=bench-model

. "$(dirname "$0")/common.sh"
bench_setup python.sh "$bench" "$upstream" "$daemon"

"$upstream" -t 300 >"$tmp/up.out" 2>"$tmp/up.err" &
pids="$pids $!"
i=0
while ! grep -q '^PORT ' "$tmp/up.out" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 200 ] && { echo "python.sh: upstream did not start" >&2; exit 1; }
	sleep 0.05
done
port=$(sed -n 's/^PORT //p' "$tmp/up.out")
sock=$tmp/llmgate.sock
cat >"$tmp/llmgated.conf" <<EOF2
socket = "$sock";
log_level = "warn";
providers = (
	{ name = "bench"; type = "openai";
	  base_url = "http://127.0.0.1:$port/v1"; api_key = "bench"; }
);
EOF2
"$daemon" -c "$tmp/llmgated.conf" 2>"$tmp/llmgated.log" &
pids="$pids $!"
i=0
while [ ! -S "$sock" ]; do
	i=$((i + 1))
	[ $i -gt 200 ] && { echo "python.sh: llmgated did not start" >&2; exit 1; }
	sleep 0.05
done

echo "llmgate Python client vs libllmgate: $(nproc 2>/dev/null || echo '?')" \
    "CPUs, one connection, plain calls to a canned upstream, best of $REPEAT"
printf '%-14s %3s %9s %8s %8s %9s\n' client c "calls/s" "p50 us" \
    "p99 us" "+p50 us"
for c in 1 16; do
	if [ "$c" = 1 ]; then n=$N1; else n=$N16; fi
	cres=$(best "$bench" -s "$sock" -m "bench/$MODEL" -n "$n" -c "$c" \
	    -T 30 --json)
	c50=$(field "$cres" p50_us)
	printf '%-14s %3d %9.0f %8d %8d %9s\n' libllmgate "$c" \
	    "$(field "$cres" calls_per_s)" "$c50" "$(field "$cres" p99_us)" -
	for mode in sync async; do
		r=$(PYTHONPATH="$src/client/python" best "$python" \
		    "$src/bench/python_bench.py" -s "$sock" -m "bench/$MODEL" \
		    -n "$n" -c "$c" --mode "$mode")
		p50=$(field "$r" p50_us)
		printf '%-14s %3d %9.0f %8d %8d %9d\n' "python-$mode" "$c" \
		    "$(field "$r" calls_per_s)" "$p50" "$(field "$r" p99_us)" \
		    $((p50 - c50))
	done
done
