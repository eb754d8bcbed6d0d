#!/bin/sh
# check_mypy.sh: the Python client's type hints, checked with Debian's mypy
# under client/python/mypy.ini (--strict and unreachable-code warnings).
# A missing mypy fails the test suite, it is not skipped.
set -u
srcdir=${srcdir:-$(dirname "$0")/..}
python=${PYTHON:-/usr/bin/python3}

if ! "$python" -c "import mypy" 2>/dev/null; then
	echo "check_mypy: $python cannot import mypy (apt-get install mypy)" >&2
	exit 1
fi
# --cache-dir=/dev/null: nothing is written into the source or build tree.
exec "$python" -m mypy --cache-dir=/dev/null \
    --config-file "$srcdir/client/python/mypy.ini" \
    "$srcdir/client/python/llmgate"
