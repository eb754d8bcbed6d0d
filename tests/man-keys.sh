#!/bin/sh
# The man pages stay in sync with the code:
# - llmgated.conf(5) documents exactly the keys of each key table of
#   daemon/config*.c (its ".\" keys: TABLE" comments open each table's
#   list), each with a type (Pq) and a "Default:";
# - llmgate(1) has a section for each command of client/cli.c and names
#   every long option of client/cli*.c;
# - llmgated(8) names every long option of daemon/main.c.
set -u
src=${srcdir:-.}
page5=$src/man/llmgated.conf.5.in
page1=$src/man/llmgate.1.in
page8=$src/man/llmgated.8.in
tmp=$(mktemp -d "${TMPDIR:-/tmp}/man-keys.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0

# The key tables are in daemon/config*.c (config-keys.c and a file per
# large block).
for f in "$src"/daemon/config*.c "$page5" "$page1" "$page8" "$src/client/cli.c"; do
	[ -r "$f" ] || { echo "ERROR: cannot read $f"; exit 99; }
done

# "TABLE KEY" for every key of every config_key table in config*.c.
awk '
/^static const struct config_key [a-z_]+\[\] = \{/ {
	t = $5; sub(/\[\].*/, "", t); next
}
t != "" && /^};/ { t = ""; next }
t != "" {
	s = $0
	while (match(s, /\.name = "[^"]+"/)) {
		k = substr(s, RSTART + 9, RLENGTH - 10)
		print t, k
		s = substr(s, RSTART + RLENGTH)
	}
}' "$src"/daemon/config*.c | sort -u > "$tmp/code"

if [ ! -s "$tmp/code" ]; then
	echo "ERROR: no key tables found in daemon/config*.c (has their" \
	    "layout changed?)"
	exit 99
fi

# "TABLE KEY" for every documented key; an entry without a type or a
# default is reported here and fails the test.
awk -v page="$page5" '
/^\.\\" keys: / { t = $3; depth = 0; next }
t == "" { next }
/^\.Bl/ { depth++; next }
/^\.El/ {
	depth--
	if (depth == 0) { finish(); t = "" }
	next
}
depth == 1 && /^\.It / {
	finish()
	if ($2 != "Ic") {
		printf("%s:%d: item without .It Ic KEY\n", page, NR) > "/dev/stderr"
		bad = 1
		next
	}
	key = $3; line = NR; typed = ($4 == "Pq"); dflt = 0
	print t, key
	next
}
key != "" && /Default:/ { dflt = 1 }
function finish() {
	if (key == "")
		return
	if (!typed) {
		printf("%s:%d: %s: no type (.It Ic %s Pq TYPE)\n", page, line,
		    key, key) > "/dev/stderr"
		bad = 1
	}
	if (!dflt) {
		printf("%s:%d: %s: no \"Default:\"\n", page, line, key) \
		    > "/dev/stderr"
		bad = 1
	}
	key = ""
}
END { exit bad }' "$page5" | sort -u > "$tmp/doc" || fail=1

comm -23 "$tmp/code" "$tmp/doc" > "$tmp/missing"
comm -13 "$tmp/code" "$tmp/doc" > "$tmp/extra"
if [ -s "$tmp/missing" ]; then
	echo "FAIL: keys of daemon/config*.c missing from llmgated.conf(5)" \
	    "(table key):"
	sed 's/^/  /' "$tmp/missing"
	fail=1
fi
if [ -s "$tmp/extra" ]; then
	echo "FAIL: keys in llmgated.conf(5) that daemon/config*.c do not" \
	    "have (table key):"
	sed 's/^/  /' "$tmp/extra"
	fail=1
fi
echo "llmgated.conf(5): $(wc -l < "$tmp/code") keys in" \
    "$(cut -d' ' -f1 "$tmp/code" | sort -u | wc -l) tables checked"

# Long options of struct option tables: { "name", ... }.
longopts() {
	awk '
	/struct option [a-z_]+\[\] = \{/ { in_t = 1; next }
	in_t && /^[ \t]*};/ { in_t = 0; next }
	in_t && match($0, /\{ *"[a-z-]+"/) {
		s = substr($0, RSTART, RLENGTH); sub(/^\{ *"/, "", s)
		sub(/"$/, "", s); print s
	}' "$@"
}

check_opts() {	# page, files...
	page=$1; shift
	for o in $(longopts "$@" | sort -u); do
		if ! grep -q "Fl \\\\-$o\\b" "$page"; then
			echo "FAIL: option --$o of $* is not in $page"
			fail=1
		fi
	done
}

check_opts "$page1" "$src"/client/cli*.c
# CLI_OPTIONS_END in cli.h adds these to every command.
for o in socket help; do
	grep -q "Fl \\\\-$o\\b" "$page1" || {
		echo "FAIL: option --$o is not in $page1"; fail=1; }
done
check_opts "$page8" "$src/daemon/main.c"

# Each command of the CLI's table has its own subsection.
for c in $(awk '/^static const struct cmd cmds\[\]/ { in_t = 1; next }
    in_t && /^};/ { in_t = 0 }
    in_t && match($0, /^\t\{ "[a-z]+"/) {
	s = substr($0, RSTART, RLENGTH); sub(/^\t\{ "/, "", s)
	sub(/"$/, "", s); print s
    }' "$src/client/cli.c"); do
	if ! grep -q "^\.Ss $c\$" "$page1"; then
		echo "FAIL: command '$c' of client/cli.c has no section in $page1"
		fail=1
	fi
done

[ $fail -eq 0 ] && echo "ok: the man pages name every key, option and command"
exit $fail
