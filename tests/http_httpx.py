#!/usr/bin/python3
"""The HTTP front seen with Python httpx (Debian's python3-httpx): the raw
Server-Sent Events framing of both dialects and its timing (each piece is
written when the upstream delivers it), the error table, and the attempt
headers against the body, over loopback TCP and the Unix socket. Starts the
real llmgated and the loopback fake provider; skipped (77) without httpx."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

try:
    import httpx
except ImportError:
    print("SKIP: python3-httpx is not installed")
    sys.exit(77)

BUILD = os.getcwd()
failed = 0


def check(name, fn):
    global failed
    try:
        fn()
        print(f"ok {name}")
    except Exception as e:  # noqa: BLE001 - report every failure
        failed += 1
        import traceback
        traceback.print_exc()
        print(f"FAIL {name}: {e!r}")


def start():
    tmp = tempfile.mkdtemp(prefix="llmgate-httpx.")
    fp = subprocess.Popen([f"{BUILD}/tests/fakeprov", "-p", "0", "-t", "120"],
                          stdout=subprocess.PIPE, text=True)
    port = int(fp.stdout.readline().split()[1])
    conf = f"{tmp}/llmgated.conf"
    with open(conf, "w") as f:
        f.write(f'''providers = (
  {{ name = "oa"; type = "openai"; base_url = "http://127.0.0.1:{port}/v1"; api_key = "test-key"; }},
  {{ name = "an"; type = "anthropic"; base_url = "http://127.0.0.1:{port}/v1"; api_key = "test-key"; }},
  {{ name = "ge"; type = "gemini"; base_url = "http://127.0.0.1:{port}/v1beta"; api_key = "test-key"; }}
);
retry = {{ attempts = 2; initial_ms = 10; max_ms = 50; }};
retry_budget = {{ ratio = 1.0; min_per_s = 1000; }};
http = {{ listen = ( "127.0.0.1:0", "unix:" ); }};
''')
    log = open(f"{tmp}/llmgated.log", "w+")
    gd = subprocess.Popen([f"{BUILD}/llmgated", "-v", "-c", conf, "-s", f"{tmp}/llmgate.sock"],
                          stderr=log)
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = open(f"{tmp}/llmgated.log").read()
        if " ready (" in text:
            break
        time.sleep(0.02)
    m = re.search(r"HTTP front listening on 127\.0\.0\.1:(\d+)", text)
    assert m, text
    return tmp, fp, gd, int(m.group(1))


tmp, fp, gd, hport = start()
base = f"http://127.0.0.1:{hport}"
client = httpx.Client(base_url=base, timeout=30)
unix = httpx.Client(base_url="http://localhost", timeout=30,
                    transport=httpx.HTTPTransport(uds=f"{tmp}/llmgate-http.sock"))
hello = [{"role": "user", "content": "hello there"}]


def sse_openai():
    body = {"model": "oa/x1+word_delay=200", "stream": True, "messages":
            [{"role": "user", "content": "a b c"}]}
    times, raw = [], b""
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["x-should-retry"] == "false"
        for piece in r.iter_raw():
            raw += piece
            times.append((time.monotonic(), raw.count(b"\n\n")))
    events = raw.split(b"\n\n")
    assert events[-1] == b"", raw
    events = events[:-1]
    for e in events:
        assert e.startswith(b"data: ") and b"\n" not in e, e
    assert events[-1] == b"data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "echo: a b c", text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # Written as they came: the pieces arrived over the upstream's pauses.
    assert times[-1][0] - times[0][0] > 0.5, times


def sse_anthropic():
    body = {"model": "ge/x2", "max_tokens": 32, "stream": True, "messages": hello}
    with unix.stream("POST", "/v1/messages", json=body) as r:
        assert r.status_code == 200
        raw = r.read()
    events = raw.split(b"\n\n")[:-1]
    names = []
    for e in events:
        lines = e.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), e
        name = lines[0][7:].decode()
        data = json.loads(lines[1][6:])
        assert data["type"] == name
        names.append(name)
    assert names[0] == "message_start" and names[-1] == "message_stop", names
    assert names[-2] == "message_delta"
    assert "content_block_start" in names and "content_block_stop" in names


def errors_and_attempts():
    cases = [("oa/e1+status=400+code=context_length_exceeded", 400, "context_length_exceeded"),
             ("oa/e2+status=429", 429, "rate_limit_exceeded"),
             ("oa/e3+status=503", 503, "overloaded"),
             ("oa/e4+status=500", 502, "upstream_error"),
             ("unknown-model", 404, "model_not_found")]
    for model, status, code in cases:
        r = client.post("/v1/chat/completions", json={"model": model, "messages": hello})
        assert r.status_code == status, (model, r.status_code, r.text)
        j = r.json()
        assert j["error"]["code"] == code, j
        assert r.headers["x-should-retry"] == "false"
        if status in (429, 503):
            assert int(r.headers["retry-after"]) >= 1
        if "/" in model:
            assert json.loads(r.headers["x-llmgate-attempts"]) == j["llmgate"]["attempts"]
    r = client.post("/v1/messages", json={"model": "an/e5+status=529", "max_tokens": 8,
                                          "messages": hello})
    assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error", r.text
    r = client.post("/v1/chat/completions", json={"model": "oa/ok1", "models": ["oa/ok1+status=500", "an/ok2"],
                                                  "messages": hello})
    # model first, then the models array
    assert r.status_code == 200 and r.headers["x-llmgate-target"] == "oa/ok1"
    r = client.post("/v1/chat/completions", json={"model": "oa/f1+status=500", "messages": hello},
                    headers={"x-llmgate-models": "an/f2"})
    assert r.status_code == 200 and r.headers["x-llmgate-target"] == "an/f2"
    att = json.loads(r.headers["x-llmgate-attempts"])
    assert [a["class"] for a in att] == ["server_error", "server_error", "ok"], att
    assert att == r.json()["llmgate"]["attempts"]


check("openai SSE framing and timing", sse_openai)
check("anthropic SSE framing over the unix socket", sse_anthropic)
check("error table and attempt headers", errors_and_attempts)

gd.terminate()
rc = gd.wait()
fp.terminate()
fp.wait()
if rc != 0:
    failed += 1
    print(f"FAIL llmgated exited {rc}")
if failed:
    print(open(f"{tmp}/llmgated.log").read()[-3000:])
subprocess.run(["rm", "-rf", tmp])
sys.exit(1 if failed else 0)
