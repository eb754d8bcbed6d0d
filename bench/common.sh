# common.sh: what every bench script starts with; sourced, not run.
#
# bench_setup NAME PROGRAM...: fails unless each PROGRAM is built, makes
# $tmp, and on exit ends the processes in $pids and $daemon_pid and
# removes $tmp. Benchmarks print numbers; nothing passes or fails on speed.

bench_setup() {
	bench_name=$1
	shift
	for f in "$@"; do
		if [ ! -x "$f" ]; then
			echo "$bench_name: $f not found; build with: make && make bench" >&2
			exit 1
		fi
	done
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmgate-${bench_name%.sh}.XXXXXX")
	pids=
	daemon_pid=
	trap bench_cleanup EXIT
	trap 'exit 1' INT TERM
}

bench_cleanup() {
	for p in $daemon_pid $pids; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}

# One number out of a --json line: field LINE NAME.
field() {
	printf '%s\n' "$1" | sed -n "s/.*\"$2\": \([-0-9.]*\).*/\1/p"
}

# best CMD...: runs CMD REPEAT times and prints the output of the run with
# the most calls/s: a JSON line's calls_per_s, or else the output's first
# word. One run on a busy machine can be half as fast as the next.
best() {
	b_best=
	b_rate=-1
	b_i=0
	while [ "$b_i" -lt "$REPEAT" ]; do
		b_i=$((b_i + 1))
		b_out=$("$@") || true
		b_r=$(field "$b_out" calls_per_s)
		[ -n "$b_r" ] || b_r=${b_out%% *}
		if [ -n "$b_r" ] &&
		    awk -v a="$b_r" -v b="$b_rate" 'BEGIN { exit !(a > b) }'; then
			b_best=$b_out
			b_rate=$b_r
		fi
	done
	printf '%s\n' "$b_best"
}
