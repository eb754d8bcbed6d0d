#!/bin/sh
#
# valgrind.sh: run the end-to-end suites with llmgated under valgrind
# memcheck. The harness puts $LLMGATE_TEST_WRAPPER in front of the daemon's
# argv; a memcheck error or a definite/indirect leak makes the daemon exit
# 99, which h_daemon_stop() reports as a failed test. Each daemon's report
# is kept in its own file; with --quiet a file has text only when there is
# a finding, and those are printed at the end (and fail the run, in case a
# test did not check the daemon's exit status).
#
# Usage, from a build directory: [VALGRIND_JOBS=N] [srcdir]/tests/valgrind.sh [SUITE...]
# (default: check_e2e check_providers check_resume check_budget).
#

build=${BUILD_DIR:-.}
suites=${*:-"check_e2e check_providers check_resume check_budget"}

if ! command -v valgrind >/dev/null 2>&1; then
	echo "valgrind.sh: valgrind is not installed" >&2
	exit 77
fi
for s in $suites; do
	if [ ! -x "$build/tests/$s" ]; then
		echo "valgrind.sh: $build/tests/$s is not built" \
		    "(make check TESTS=)" >&2
		exit 2
	fi
done

logs=$(mktemp -d /tmp/llmgate-valgrind.XXXXXX) || exit 2
# A daemon a test starts as another user (nobody) writes its report here too.
chmod 1777 "$logs"
LLMGATE_TEST_WRAPPER="valgrind --quiet --leak-check=full"
LLMGATE_TEST_WRAPPER="$LLMGATE_TEST_WRAPPER --show-leak-kinds=definite,indirect"
LLMGATE_TEST_WRAPPER="$LLMGATE_TEST_WRAPPER --errors-for-leak-kinds=definite,indirect"
LLMGATE_TEST_WRAPPER="$LLMGATE_TEST_WRAPPER --error-exitcode=99 --track-fds=no"
LLMGATE_TEST_WRAPPER="$LLMGATE_TEST_WRAPPER --num-callers=30"
LLMGATE_TEST_WRAPPER="$LLMGATE_TEST_WRAPPER --log-file=$logs/llmgated.%p.log"
export LLMGATE_TEST_WRAPPER
# The daemon runs many times slower: give Check's timeouts room too.
CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-10}
export CK_TIMEOUT_MULTIPLIER

# Suites are independent (own temporary directories, sockets and ports),
# as under make check -j: run VALGRIND_JOBS of them at once (default: one
# per processor), each one's output kept and printed whole, in order.
jobs=${VALGRIND_JOBS:-$(nproc 2>/dev/null || echo 1)}
export build logs
printf '%s\n' $suites | xargs -P "$jobs" -I{} sh -c '
	if "$build/tests/$1" >"$logs/$1.out" 2>&1; then
		echo ok >"$logs/$1.rc"
	else
		echo failed >"$logs/$1.rc"
	fi' sh {}
failed=""
for s in $suites; do
	echo "== $s (llmgated under valgrind)"
	cat "$logs/$s.out"
	[ "$(cat "$logs/$s.rc" 2>/dev/null)" = ok ] || failed="$failed $s"
done

found=0
for f in "$logs"/llmgated.*.log; do
	[ -s "$f" ] || continue
	found=$((found + 1))
	echo "== valgrind report $f"
	cat "$f"
done
echo "valgrind.sh: $found daemon run(s) with valgrind output; reports in $logs"
if [ -n "$failed" ]; then
	echo "valgrind.sh: failed:$failed" >&2
	exit 1
fi
[ "$found" -eq 0 ] || exit 1
exit 0
