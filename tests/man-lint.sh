#!/bin/sh
# The man pages, as built (paths filled in), must pass mandoc's lint at
# warning level and format under groff (what man-db uses) without a
# warning. Skipped (77) when neither checker is installed.
set -u
pages="man/llmgate.1 man/llmgated.8 man/llmgated.conf.5"
fail=0

have() { command -v "$1" >/dev/null 2>&1; }

if ! have mandoc && ! have groff; then
	echo "SKIP: neither mandoc nor groff is installed (Debian: mandoc)"
	exit 77
fi
for p in $pages; do
	if [ ! -f "$p" ]; then
		echo "FAIL: $p was not built"
		fail=1
		continue
	fi
	if grep -n '@[a-z]*@' "$p"; then
		echo "FAIL: $p: a placeholder was left unsubstituted"
		fail=1
	fi
	if have mandoc; then
		if ! mandoc -T lint -W warning "$p"; then
			echo "FAIL: $p: mandoc -T lint reports the lines above"
			fail=1
		fi
	else
		echo "note: mandoc is not installed, only groff checks $p"
	fi
	if have groff; then
		out=$(groff -mandoc -Tutf8 -ww -z "$p" 2>&1)
		if [ -n "$out" ]; then
			printf '%s\n' "$out"
			echo "FAIL: $p: groff warns"
			fail=1
		fi
	fi
	[ $fail -eq 0 ] && echo "ok: $p"
done
exit $fail
