#!/bin/sh
#
# http.sh: the HTTP front's overhead. wrk drives the same Chat Completions
# request (plain, then streamed) at bench/upstream directly and through
# llmgated's HTTP front (loopback TCP), at 1 and 16 connections (one
# request in flight on each), and prints calls/s, p50 and p99 of each and
# what the front adds. Needs wrk (Debian package wrk).
#
# usage: bench/http.sh [BUILDDIR]   (default: $BUILDDIR, else .)
# Build first: make && make bench. DURATION (s, default 5) per run;
# LOG_LEVEL (default warn, as bench/run.sh) for llmgated. wrk keeps each
# connection alive (HTTP/1.1), so the rates are per request, not per
# connection.
# Benchmarks print numbers; nothing here passes or fails on speed.

set -eu

build=${1:-${BUILDDIR:-.}}
upstream=$build/bench/upstream
daemon=$build/llmgated
DURATION=${DURATION:-5}

command -v wrk >/dev/null || { echo "http.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }

. "$(dirname "$0")/common.sh"
bench_setup http.sh "$upstream" "$daemon"

"$upstream" -t 300 >"$tmp/up.out" 2>"$tmp/up.err" &
pids="$pids $!"
i=0
while ! grep -q '^PORT ' "$tmp/up.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 100 ] && { echo "http.sh: upstream did not start" >&2; exit 1; }
	sleep 0.05
done
up=$(sed -n 's/^PORT //p' "$tmp/up.out")

# A free loopback port for the front (at log level warn the daemon does
# not log the one it was given).
front=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/llmgated.conf" <<CONF
socket = "$tmp/llmgate.sock";
log_level = "${LOG_LEVEL:-warn}";
max_conns_per_uid = 0;
providers = ( { name = "bench"; type = "openai";
  base_url = "http://127.0.0.1:$up/v1"; api_key = "bench"; } );
routes = ( { name = "default"; targets = [ "bench/bench-model" ]; } );
http = { listen = ( "127.0.0.1:$front" ); };
CONF
"$daemon" -c "$tmp/llmgated.conf" 2>"$tmp/llmgated.log" &
pids="$pids $!"
i=0
while ! curl -s -o /dev/null "http://127.0.0.1:$front/v1/models"; do
	i=$((i + 1)); [ $i -gt 100 ] && { echo "http.sh: llmgated did not start" >&2; cat "$tmp/llmgated.log" >&2; exit 1; }
	sleep 0.05
done

# One request body, sent both ways; the upstream checks only the key.
for s in false true; do
	cat >"$tmp/post-$s.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
wrk.body = '{"model": "bench/bench-model", "stream": $s, "messages": [{"role": "user", "content": "Say hello in one short sentence."}], "max_tokens": 64}'
LUA
done

# run URL CONNS STREAM: "calls/s p50_us p99_us"
run() {
	threads=$2; [ "$threads" -gt 2 ] && threads=2
	wrk -t"$threads" -c"$2" -d"${DURATION}s" --latency -s "$tmp/post-$3.lua" "$1" >"$tmp/wrk.out" 2>&1
	awk '
	function us(v) {
		if (v ~ /us$/) { sub(/us$/, "", v); return v + 0 }
		if (v ~ /ms$/) { sub(/ms$/, "", v); return v * 1000 }
		if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000000 }
		return v
	}
	/Requests\/sec/ { rps = $2 }
	$1 == "50%" { p50 = us($2) }
	$1 == "99%" { p99 = us($2) }
	/Non-2xx/ { bad = $NF }
	END { printf "%d %d %d %s\n", rps, p50, p99, bad == "" ? 0 : bad }' "$tmp/wrk.out"
}

printf '| load | direct calls/s | through the front | ratio | p50 direct | p50 added | p99 added |\n'
printf '| --- | --- | --- | --- | --- | --- | --- |\n'
for s in false true; do
	for c in 1 16; do
		set -- $(run "http://127.0.0.1:$up/v1/chat/completions" $c $s)
		d_rps=$1 d_p50=$2 d_p99=$3
		set -- $(run "http://127.0.0.1:$front/v1/chat/completions" $c $s)
		f_rps=$1 f_p50=$2 f_p99=$3 f_bad=$4
		[ "$f_bad" != 0 ] && echo "http.sh: $f_bad answers through the front were not 2xx" >&2
		name=plain; [ $s = true ] && name=stream
		awk -v n="$name, $c in flight" -v d="$d_rps" -v f="$f_rps" \
		    -v dp="$d_p50" -v fp="$f_p50" -v d9="$d_p99" -v f9="$f_p99" 'BEGIN {
			printf "| %s | %d | %d | %.2f | %d µs | +%d µs | +%d µs |\n",
			    n, d, f, d ? f / d : 0, dp, fp - dp, f9 - d9 }'
	done
done
