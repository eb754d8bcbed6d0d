#!/bin/sh
# check_python.sh: the Python client's tests (tests/python), with pytest,
# against the built llmgated, llmgate CLI and tests/fakeprov. Python and
# its modules are required: a missing one fails the test suite, it is not
# skipped.
set -u
srcdir=${srcdir:-$(dirname "$0")/..}
builddir=${LLMGATE_BUILDDIR:-$(pwd)}
python=${PYTHON:-/usr/bin/python3}

if ! command -v "$python" >/dev/null 2>&1; then
	echo "check_python: $python not found (apt-get install python3)" >&2
	exit 1
fi
for mod in msgpack pytest httpx pydantic; do
	if ! "$python" -c "import $mod" 2>/dev/null; then
		echo "check_python: $python cannot import $mod" \
		    "(apt-get install python3-$mod)" >&2
		exit 1
	fi
done
export LLMGATE_BUILDDIR="$builddir"
PYTHONPATH="$srcdir/client/python:$srcdir/tests/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
unset LLMGATE_SOCKET
# -p no:cacheprovider: nothing is written into the source tree.
"$python" -m pytest -q -p no:cacheprovider "$srcdir/tests/python"
rc=$?
# 5: no tests were collected, which must not pass.
[ $rc -eq 5 ] && echo "check_python: no tests collected" >&2
exit $rc
