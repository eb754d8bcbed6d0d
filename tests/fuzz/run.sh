#!/bin/sh
#
# run.sh: build every libFuzzer target in a temporary directory, straight
# from the sources (no configure, no config.h), replay the saved
# regressions, then fuzz each target for SECONDS (default 10) starting from
# its seed corpus. Exits 1 on any crash, leak, timeout or out-of-memory, and
# keeps the temporary directory, whose artifacts/ holds the input.
#
#	tests/fuzz/run.sh [SECONDS]
#
# FUZZ_TARGETS="fuzz_sse fuzz_frame" picks targets; FUZZ_JOBS=N runs N
# fuzzing processes per target (libFuzzer -fork); CC overrides the compiler.
# A long run, an hour per target on every core:
#
#	FUZZ_JOBS=$(nproc) tests/fuzz/run.sh 3600
#
# New inputs are written to the temporary corpus only; the seed corpus in
# tests/fuzz/corpus/ is not changed.

set -u

secs=${1:-10}
case $secs in
''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

top=$(cd "$(dirname "$0")/../.." && pwd)
fz=$top/tests/fuzz
cc=${CC:-clang}
jobs=${FUZZ_JOBS:-1}

all="fuzz_frame fuzz_sse fuzz_jload fuzz_openai fuzz_anthropic fuzz_gemini
fuzz_header fuzz_config fuzz_front fuzz_wire"
# The schema validator, when the tree has one.
[ -f "$top/daemon/schema.c" ] && all="$all fuzz_schema"
targets=${FUZZ_TARGETS:-$all}

# Largest input per target: a few times the biggest realistic one.
max_len() {
	case $1 in
	fuzz_header)	echo 4096 ;;
	fuzz_frame|fuzz_sse|fuzz_jload|fuzz_config|fuzz_schema|fuzz_front|fuzz_wire) echo 16384 ;;
	*)		echo 32768 ;;
	esac
}

# msgpack-c is "msgpack" on Debian 12, "msgpack-c" on newer releases.
msgpack=msgpack
pkg-config --exists msgpack-c && msgpack=msgpack-c
pkgs="libevent libcurl $msgpack libconfig jansson libpcre2-8 hiredis"
if ! depflags=$(pkg-config --cflags "$pkgs") ||
    ! deplibs=$(pkg-config --libs "$pkgs"); then
	echo "run.sh: pkg-config cannot find $pkgs" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/llmgate-fuzz.XXXXXX") || exit 1
mkdir -p "$work/obj" "$work/bin" "$work/corpus" "$work/artifacts" \
    "$work/log" "$work/tmp"

sanflags="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-g -O1 -fno-omit-frame-pointer $sanflags -D_GNU_SOURCE \
-I$top/proto -I$top/client -I$top/daemon -I$fz $depflags \
-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers"

fail() {
	echo "run.sh: $*" >&2
	echo "run.sh: kept $work" >&2
	exit 1
}

# The wire codec and the daemon's library sources (all but main.c),
# instrumented for libFuzzer but without its main.
echo "run.sh: building in $work"
objs=
for src in "$top"/proto/proto*.c "$top"/proto/names.c "$top"/proto/xmalloc.c \
    "$top"/daemon/*.c "$fz/fuzz_provider.c"; do
	case $src in */main.c) continue ;; esac
	obj=$work/obj/$(basename "$src" .c).o
	# shellcheck disable=SC2086
	$cc $cflags -fsanitize=fuzzer-no-link -c "$src" -o "$obj" ||
	    fail "cannot compile $src"
	objs="$objs $obj"
done
for t in $targets; do
	[ -f "$fz/$t.c" ] || fail "no target $t"
	# shellcheck disable=SC2086
	$cc $cflags -fsanitize=fuzzer "$fz/$t.c" $objs $deplibs -lhttp_parser -lm \
	    -o "$work/bin/$t" || fail "cannot link $t"
done

# Options of every run. ASan's leak check is on by default; libFuzzer
# reports a leak as a failure.
opts="-timeout=10 -rss_limit_mb=2048 -print_final_stats=1"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
lsan="suppressions=$fz/lsan.supp:print_suppressions=0"
export LSAN_OPTIONS="${LSAN_OPTIONS:-$lsan}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# Whatever a target leaves in TMPDIR goes with the work directory.
export TMPDIR="$work/tmp"

status=0
for t in $targets; do
	bin=$work/bin/$t
	dict=
	[ -f "$fz/dict/$t.dict" ] && dict="-dict=$fz/dict/$t.dict"

	# Inputs that once failed must pass now.
	for r in "$fz"/regress/"$t"-*; do
		[ -f "$r" ] || continue
		# shellcheck disable=SC2086
		if ! "$bin" $opts "$r" >"$work/log/$t.regress.log" 2>&1; then
			echo "run.sh: $t: regression $(basename "$r") fails" \
			    "(log: $work/log/$t.regress.log)" >&2
			status=1
		fi
	done

	mkdir -p "$work/corpus/$t"
	echo "run.sh: $t for ${secs}s"
	fork=
	# Fork mode ignores timeouts and OOMs unless told otherwise.
	[ "$jobs" -gt 1 ] && fork="-fork=$jobs -ignore_crashes=0 \
-ignore_timeouts=0 -ignore_ooms=0"
	# shellcheck disable=SC2086
	"$bin" $opts $dict $fork -max_len="$(max_len "$t")" \
	    -max_total_time="$secs" -artifact_prefix="$work/artifacts/$t-" \
	    "$work/corpus/$t" "$fz/corpus/$t" </dev/null \
	    >"$work/log/$t.log" 2>&1
	rc=$?
	grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' \
	    "$work/log/$t.log" | sed "s/^/run.sh: $t: /"
	if [ $rc -ne 0 ]; then
		echo "run.sh: $t failed (exit $rc); log: $work/log/$t.log" >&2
		ls "$work/artifacts/" 2>/dev/null | grep "^$t-" |
		    sed "s|^|run.sh: artifact: $work/artifacts/|" >&2
		status=1
	fi
done

if [ $status -ne 0 ]; then
	echo "run.sh: kept $work" >&2
	exit 1
fi
rm -rf "$work"
echo "run.sh: all targets passed"
exit 0
