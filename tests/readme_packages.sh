#!/bin/sh
# The README's quick start must install every package of .ci/packages, the
# one list CI installs: a package the tests need but the README's command
# leaves out makes `make check` fail on a fresh machine.
srcdir=${srcdir:-.}
readme=$srcdir/README.md
list=$srcdir/.ci/packages
cmd=$(sed -n '/^## Quick start/,/^## /p' "$readme" | grep -m1 'apt-get install')
if [ -z "$cmd" ]; then
	echo "no apt-get install command in the README's quick start" >&2
	exit 1
fi
case $cmd in
*'$(cat .ci/packages)'*)
	# It installs the file; the line that names them must match it.
	shown=$(sed -n '/^## Quick start/,/^## /p' "$readme" |
	    sed -n '/^The list today/,/^$/p' | tr -d '`.' | tr ' ' '\n' |
	    sed -n '/^file):$/,$p' | sed '1d' | grep . | tr '\n' ' ')
	want=$(tr -s ' \n' '  ' < "$list" | sed 's/ *$//')
	if [ "$(echo $shown)" != "$(echo $want)" ]; then
		echo "the README's quick start names: $shown" >&2
		echo "but .ci/packages holds:         $want" >&2
		exit 1
	fi
	exit 0 ;;
esac
status=0
for pkg in $(cat "$list"); do
	case " $cmd " in
	*" $pkg "*) ;;
	*) echo "README's quick start does not install $pkg (.ci/packages)" >&2
	   status=1 ;;
	esac
done
exit $status
