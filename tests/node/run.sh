#!/bin/sh
# The HTTP front with the official SDKs as clients: `openai` and
# `@anthropic-ai/sdk` from npm, pinned by tests/node/package-lock.json,
# against the real llmgated and the loopback fake provider.
# Skipped (77) when node is missing or npm cannot install the SDKs.
set -u
srcdir=${srcdir:-.}
top=$(cd "$srcdir" && pwd)
build=$(pwd)
nodedir="$top/tests/node"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "SKIP: node and npm are needed (Debian packages nodejs npm)"
	exit 77
fi
if ! (cd "$nodedir" && npm ls --silent >/dev/null 2>&1); then
	if ! (cd "$nodedir" && npm ci --no-audit --no-fund --loglevel=error) \
	    > "${TMPDIR:-/tmp}/llmgate-npm.$$" 2>&1; then
		cat "${TMPDIR:-/tmp}/llmgate-npm.$$"
		if grep -q 'CERT\|certificate' "${TMPDIR:-/tmp}/llmgate-npm.$$"; then
			echo "SKIP: npm ci failed: the registry's TLS certificate is" \
			    "not trusted (behind a proxy that re-signs TLS, give npm" \
			    "its CA: npm config set cafile FILE, or NODE_EXTRA_CA_CERTS)"
		else
			echo "SKIP: npm ci failed (no registry reachable?)"
		fi
		rm -f "${TMPDIR:-/tmp}/llmgate-npm.$$"
		exit 77
	fi
fi

dir=$(mktemp -d /tmp/llmgate-node.XXXXXX)
fp=
gd=
cleanup() {
	[ -n "$gd" ] && kill "$gd" 2>/dev/null && wait "$gd" 2>/dev/null
	[ -n "$fp" ] && kill "$fp" 2>/dev/null && wait "$fp" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"$build/tests/fakeprov" -p 0 -t 300 > "$dir/fp.out" &
fp=$!
i=0
while ! grep -q '^PORT ' "$dir/fp.out" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 500 ] && { echo "fakeprov did not start"; exit 1; }
	sleep 0.01
done
port=$(sed -n 's/^PORT //p' "$dir/fp.out")

cat > "$dir/llmgated.conf" <<CONF
providers = (
  { name = "oa"; type = "openai"; base_url = "http://127.0.0.1:$port/v1"; api_key = "test-key";
    models = ( { name = "gpt-x"; } ); },
  { name = "an"; type = "anthropic"; base_url = "http://127.0.0.1:$port/v1"; api_key = "test-key"; },
  { name = "ge"; type = "gemini"; base_url = "http://127.0.0.1:$port/v1beta"; api_key = "test-key"; },
  { name = "mock"; type = "mock"; }
);
routes = ( { name = "default"; targets = [ "mock/echo" ]; } );
retry = { attempts = 2; initial_ms = 10; max_ms = 50; };
retry_budget = { ratio = 1.0; min_per_s = 1000; };
http = { listen = ( "127.0.0.1:0" ); };
CONF
"$build/llmgated" -v -c "$dir/llmgated.conf" -s "$dir/llmgate.sock" 2> "$dir/llmgated.log" &
gd=$!
i=0
while ! grep -q ' ready (' "$dir/llmgated.log" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 1000 ] && { echo "llmgated did not start"; cat "$dir/llmgated.log"; exit 1; }
	sleep 0.01
done
hport=$(sed -n 's/.*HTTP front listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/llmgated.log" | head -1)

cd "$nodedir" && LLMGATE_HTTP="http://127.0.0.1:$hport" LLMGATED_LOG="$dir/llmgated.log" \
	FAKEPROV="http://127.0.0.1:$port" node sdk.test.mjs
rc=$?
if [ $rc -ne 0 ]; then
	echo "--- llmgated log"; tail -50 "$dir/llmgated.log"
fi
exit $rc
