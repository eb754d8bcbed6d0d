#!/bin/sh
# libllmgate as a program outside this tree sees it: the installed header
# and the shared library.
#  - the library does not link libconfig (it must never parse the daemon's
#    config: libconfig exit()s on a bad @include, killing the host);
#  - requests (calls, acquires, reports) are opaque: a caller cannot
#    depend on their layout, so the library can grow without breaking .so.1;
#  - the README's C example compiles and links against it.
srcdir=${srcdir:-.}
lib=.libs/libllmgate.so
cc=${CC:-cc}
work=$(mktemp -d /tmp/llmgate-abi.XXXXXX) || exit 99
trap 'rm -rf "$work"' EXIT
status=0
fail() { echo "FAIL: $*" >&2; status=1; }

for tool in readelf "$cc"; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool not found (Debian packages binutils, gcc)" >&2
		exit 77
	fi
done
[ -f "$lib" ] || { echo "no $lib (run from the build directory)" >&2; exit 99; }

readelf -d "$lib" >"$work/dyn" || exit 99
if grep -q 'NEEDED.*libconfig' "$work/dyn"; then
	fail "$lib links libconfig:"
	grep NEEDED "$work/dyn" >&2
fi
grep -q 'SONAME.*libllmgate\.so\.1\]' "$work/dyn" ||
    fail "soname is not libllmgate.so.1: $(grep SONAME "$work/dyn")"
if readelf --dyn-syms -W "$lib" | awk '$7 == "UND" { print $8 }' |
    grep -q '^config_'; then
	fail "$lib calls libconfig"
fi

# What callers build is opaque: its size is unknown to them.
for t in llmgate_request llmgate_acquire llmgate_report; do
	printf '#include <llmgate.h>\nunsigned long n = sizeof(struct %s);\n' \
	    "$t" >"$work/size.c"
	if $cc -fsyntax-only -I"$srcdir/client" "$work/size.c" 2>/dev/null; then
		fail "struct $t is complete in llmgate.h"
	fi
done

# The README's example, as a program.
sed -n '/^### The C library/,/^## /p' "$srcdir/README.md" |
    sed -n '/^```c$/,/^```$/p' | sed '1d;$d' >"$work/body.c"
[ -s "$work/body.c" ] || fail "no C example in the README"
{
	printf '#include <stdio.h>\n#include <llmgate.h>\n\nint\nmain(void)\n{\n'
	cat "$work/body.c"
	printf 'return 0;\n}\n'
} >"$work/example.c"
if ! $cc -Wall -Werror -I"$srcdir/client" "$work/example.c" -o \
    "$work/example" -L.libs -lllmgate 2>"$work/cc.log"; then
	fail "the README's C example does not build:"
	cat "$work/cc.log" >&2
fi
exit $status
