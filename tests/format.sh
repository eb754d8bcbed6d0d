#!/bin/sh
# The C sources follow one formatting, the .clang-format at the top of the
# tree (style(9)-like). Fails with the files that clang-format would change;
# `clang-format -i FILE` fixes them.
srcdir=${srcdir:-.}
cd "$srcdir" || exit 1
if ! command -v clang-format >/dev/null; then
	echo "clang-format is not installed (it is in .ci/packages)" >&2
	exit 1
fi
bad=0
for f in $(find bench client daemon proto tests -name '*.[ch]' | sort); do
	if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "not formatted: $f" >&2
		bad=1
	fi
done
[ "$bad" = 0 ] || echo "run: clang-format -i FILE..." >&2
exit $bad
