#!/bin/sh
#
# http.sh: the HTTP front's overhead. wrk drives the same Chat Completions
# request (plain, then streamed) at bench/upstream directly and through
# llmgated's HTTP front (loopback TCP), at 1 and 16 connections (one
# request in flight on each), and prints calls/s, p50 and p99 of each and
# what the front adds, with llmgated's CPU per call. Then references at
# the same loads: nginx as a plain proxy (when installed; REFERENCE=none
# skips it), the libcurl client straight at the upstream, and the ceiling
# their CPU figures leave for a lean proxy with a libcurl upstream leg.
# Needs wrk (Debian package wrk).
#
# usage: bench/http.sh [BUILDDIR]   (default: $BUILDDIR, else .)
# Build first: make && make bench. DURATION (s, default 5) per run, the
# best of REPEAT (default 3) runs kept for each figure;
# LOG_LEVEL (default warn, as bench/run.sh) for llmgated. wrk keeps each
# connection alive (HTTP/1.1), so the rates are per request, not per
# connection.
# Benchmarks print numbers; nothing here passes or fails on speed.

set -eu

build=${1:-${BUILDDIR:-.}}
upstream=$build/bench/upstream
daemon=$build/llmgated
DURATION=${DURATION:-5}
REPEAT=${REPEAT:-3}

command -v wrk >/dev/null || { echo "http.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }

. "$(dirname "$0")/common.sh"
bench_setup http.sh "$upstream" "$daemon"

"$upstream" -t 300 >"$tmp/up.out" 2>"$tmp/up.err" &
upid=$!
pids="$pids $upid"
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
dpid=$!
pids="$pids $dpid"
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

# CPU time in µs: cpu_us PID (utime + stime), children_us STATFILE (the
# waited-for children's, from a saved /proc/PID/stat).
ticks=$(getconf CLK_TCK)
cpu_us() {
	awk -v t="$ticks" '{ print ($14 + $15) * 1000000 / t }' "/proc/$1/stat"
}
children_us() {
	awk -v t="$ticks" '{ print ($16 + $17) * 1000000 / t }' "$1"
}

# A command's own CPU, through a shell that waits for it: in_shell NAME
# COMMAND... writes its output to $W/NAME.out and the shell's stat, with
# the command's time as its children's, to $W/NAME.stat.
in_shell() {
	sh -c 'n=$1; shift; "$@" >"$W/$n.out" 2>&1; cat /proc/$$/stat >"$W/$n.stat"' sh "$@"
}

# run URL CONNS STREAM [PID]: "calls/s p50_us p99_us non2xx cpu_us_per_call
# wrk_cpu_us_per_call", the CPU that of PID (0 when none) over the run.
run() {
	threads=$2; [ "$threads" -gt 2 ] && threads=2
	c0=0; [ -n "${4:-}" ] && c0=$(cpu_us "$4")
	in_shell wrk wrk -t"$threads" -c"$2" -d"${DURATION}s" --latency \
	    -s "$tmp/post-$3.lua" "$1"
	c1=0; [ -n "${4:-}" ] && c1=$(cpu_us "$4")
	awk -v w="$(children_us "$tmp/wrk.stat")" -v c0="$c0" -v c1="$c1" '
	function us(v) {
		if (v ~ /us$/) { sub(/us$/, "", v); return v + 0 }
		if (v ~ /ms$/) { sub(/ms$/, "", v); return v * 1000 }
		if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000000 }
		return v
	}
	/requests in/ { n = $1 }
	/Requests\/sec/ { rps = $2 }
	$1 == "50%" { p50 = us($2) }
	$1 == "99%" { p99 = us($2) }
	/Non-2xx/ { bad = $NF }
	END { printf "%d %d %d %s %.1f %.1f\n", rps, p50, p99, bad == "" ? 0 : bad,
	    n ? (c1 - c0) / n : 0, n ? w / n : 0 }' "$tmp/wrk.out"
}
export W="$tmp"

# direct CONNS STREAM: the libcurl multi client (llmgate-bench
# --direct, the daemon's own transfer options) straight at the upstream:
# "calls/s p50_us cpu_us_per_call" (its own CPU).
direct() {
	n=$((DURATION * 4000 * $1)); [ $n -gt 200000 ] && n=200000
	sflag=; [ "$2" = true ] && sflag=--stream
	in_shell direct "$build/bench/llmgate-bench" -m bench-model -n "$n" \
	    -c "$1" $sflag --direct "http://127.0.0.1:$up/v1" -k bench --json
	d=$(cat "$tmp/direct.out")
	awk -v c="$(children_us "$tmp/direct.stat")" \
	    -v r="$(field "$d" calls_per_s)" -v p="$(field "$d" p50_us)" -v n="$(field "$d" ok)" \
	    'BEGIN { printf "%d %d %.1f\n", r, p, n ? c / n : 0 }'
}

# A reference proxy: nginx (one worker, keep-alive to the upstream, no
# buffering), when installed and REFERENCE is not "none".
ref=
if [ "${REFERENCE:-nginx}" = nginx ] && command -v nginx >/dev/null 2>&1; then
	ref=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	mkdir -p "$tmp/nginx"
	cat >"$tmp/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $tmp/nginx;
	proxy_temp_path $tmp/nginx;
	upstream up { server 127.0.0.1:$up; keepalive 32; }
	server {
		listen 127.0.0.1:$ref;
		location / {
			proxy_pass http://up;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
		}
	}
}
NGINX
	nginx -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/start.err" &
	nmaster=$!
	pids="$pids $nmaster"
	i=0
	while ! curl -s -o /dev/null "http://127.0.0.1:$ref/"; do
		i=$((i + 1)); [ $i -gt 100 ] && { echo "http.sh: nginx did not start; no reference" >&2; ref=; break; }
		sleep 0.05
	done
	# Its one worker, whose CPU per call is the reference's own.
	nworker=$(pgrep -P "$nmaster" | head -n 1)
fi

ncpu=$(nproc)

printf '| load | direct calls/s | through the front | ratio | p50 direct | p50 added | p99 added | llmgated CPU/call | its one thread allows (ratio) |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
refs=
for s in false true; do
	for c in 1 16; do
		set -- $(best run "http://127.0.0.1:$up/v1/chat/completions" $c $s "$upid")
		d_rps=$1 d_p50=$2 d_p99=$3 up_cpu=$5 wrk_cpu=$6
		set -- $(best run "http://127.0.0.1:$front/v1/chat/completions" $c $s "$dpid")
		f_rps=$1 f_p50=$2 f_p99=$3 f_bad=$4 f_cpu=$5
		[ "$f_bad" != 0 ] && echo "http.sh: $f_bad answers through the front were not 2xx" >&2
		name=plain; [ $s = true ] && name=stream
		awk -v n="$name, $c in flight" -v d="$d_rps" -v f="$f_rps" \
		    -v dp="$d_p50" -v fp="$f_p50" -v d9="$d_p99" -v f9="$f_p99" -v cpu="$f_cpu" 'BEGIN {
			t = cpu ? 1000000 / cpu : 0
			printf "| %s | %d | %d | %.2f | %d µs | %+d µs | %+d µs | %.0f µs | %d (%.2f) |\n",
			    n, d, f, d ? f / d : 0, dp, fp - dp, f9 - d9, cpu, t, d ? t / d : 0 }'
		set -- $(best direct $c $s)
		l_rps=$1 l_p50=$2 l_cpu=$3
		r_rps=0 r_p50=0 r_cpu=0
		if [ -n "$ref" ]; then
			set -- $(best run "http://127.0.0.1:$ref/v1/chat/completions" $c $s "${nworker:-}")
			r_rps=$1 r_p50=$2 r_cpu=$5
		fi
		refs="$refs$(awk -v n="$name, $c in flight" -v d="$d_rps" -v dp="$d_p50" \
		    -v r="$r_rps" -v rp="$r_p50" -v rc="$r_cpu" -v l="$l_rps" -v lp="$l_p50" \
		    -v w="$wrk_cpu" -v u="$up_cpu" -v lc="$l_cpu" -v cpus="$ncpu" -v ref="$ref" 'BEGIN {
			b = cpus * 1000000 / (w + 2 * u + lc)
			t = 1000000 / (u + lc)
			printf "| %s | %s | %s | %s | %d | %.2f | %+d µs | %.0f+%.0f+%.0f µs | %d (%.2f) | %d (%.2f) |\n",
			    n, ref ? sprintf("%d (%.2f)", r, d ? r / d : 0) : "-",
			    ref ? sprintf("%+d µs", rp - dp) : "-",
			    (ref && rc > 0) ? sprintf("%.0f µs", rc) : "-",
			    l, d ? l / d : 0, lp - dp, w, u, lc, b, d ? b / d : 0,
			    t, d ? t / d : 0 }')
"
	done
done
printf '\nReferences at the same loads (ratios against wrk direct above):\n\n'
printf '| load | nginx as proxy calls/s (ratio) | nginx p50 added | nginx CPU/call | libcurl client direct calls/s | ratio | libcurl p50 vs wrk | CPU/call: wrk+upstream+libcurl client | lean libcurl proxy, two CPUs (ratio) | lean libcurl proxy, one thread (ratio) |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
printf '%s' "$refs"
cat <<'EXPLAIN'

The two ceilings are for a "lean libcurl proxy": one whose server side
costs no more than the canned upstream and whose upstream leg is the
libcurl client, with no work of its own between the two. On two CPUs it
could give at most CPUs / (wrk's + 2 x the upstream's + the libcurl
client's CPU per call, each measured in its direct run) calls/s; run on one
thread, as llmgated's loop is, at most 1 s / (the upstream's + the libcurl
client's CPU per call). "Its one thread allows" above is the same bound
for llmgated, from its own CPU per call. The ceilings mean something only
where the runs are CPU-bound (16 in flight) on an otherwise idle machine.
EXPLAIN
