"""What the client puts on the wire, read back by a capturing fake daemon,
and what it makes of the daemon's answers."""
import json
import socket
import struct
import threading

import msgpack
import pydantic
import pytest

import llmgate


def frame(obj):
    b = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(b)) + b


def read_frame(c):
    hdr = b""
    while len(hdr) < 4:
        d = c.recv(4 - len(hdr))
        if not d:
            return None
        hdr += d
    (n,) = struct.unpack(">I", hdr)
    body = b""
    while len(body) < n:
        body += c.recv(n - len(body))
    return msgpack.unpackb(body, raw=False)


class Capture:
    """Answers hello, records every frame, answers each request with the
    frames reply(msg) gives."""

    def __init__(self, path, reply):
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.path, self.reply, self.got = path, reply, []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        c, _ = self.srv.accept()
        with c:
            while True:
                m = read_frame(c)
                if m is None:
                    return
                self.got.append(m)
                if m["t"] == "hello":
                    c.sendall(frame({"t": "hello", "id": 0, "v": 1,
                                     "server": "capture",
                                     "max_frame": 4096}))
                    continue
                for r in self.reply(m):
                    c.sendall(frame(r))


def ok(m):
    if m["t"] == "call":
        return [{"t": "result", "id": m["id"], "text": '{"name": "Ada"}',
                 "target": "p/m", "finish_reason": "stop",
                 "usage": {"input_tokens": 1, "output_tokens": 2},
                 "attempts": [{"target": "p/m", "class": "ok",
                               "status": 200, "ms": 3}],
                 "future_field": {"ignored": [1, 2]}}]
    return []


class Person(pydantic.BaseModel):
    name: str


def test_every_call_option_on_the_wire(tmp_path):
    cap = Capture(str(tmp_path / "c.sock"), ok)

    @llmgate.tool
    def get_weather(city: str) -> str:
        """Weather."""
        return city

    with llmgate.Client(cap.path, timeout=5, name="wire-test") as c:
        r = c.call("hi", models=["a/b", "c/d"], system="sys",
                   tools=[get_weather], schema=Person, max_tokens=10,
                   temperature=0.0, top_p=0.9, seed=-7, stop=["x"],
                   priority="low", timeout=1.5, attempts=4,
                   on_cut="restart", fallback_on="rate_limited",
                   reject=["length", "match:^no"])
        assert r.parsed == Person(name="Ada")
        assert r.usage.output_tokens == 2 and r.attempts[0].ms == 3
        c.call("again", route="cheap")
    hello, call, call2 = cap.got
    assert hello == {"t": "hello", "id": 0, "v": 1, "name": "wire-test"}
    assert call["id"] != 0 and call2["id"] != call["id"]
    assert call["messages"] == [{"role": "user", "content": "hi"}]
    assert call["targets"] == ["a/b", "c/d"]
    assert call["system"] == "sys"
    assert call["tools"][0]["name"] == "get_weather"
    assert json.loads(call["tools"][0]["parameters"])["required"] == ["city"]
    assert json.loads(call["schema"])["required"] == ["name"]
    assert (call["max_tokens"], call["temperature"], call["top_p"],
            call["seed"]) == (10, 0.0, 0.9, -7)
    assert isinstance(call["temperature"], float)
    assert call["stop"] == ["x"]
    assert (call["priority"], call["timeout_ms"], call["attempts"],
            call["on_cut"]) == ("low", 1500, 4, "restart")
    assert call["fallback_on"] == ["rate_limited"]
    assert call["reject"] == ["length", "match:^no"]
    assert "stream" not in call and "route" not in call
    assert call2["route"] == "cheap" and "targets" not in call2
    # Only fields that are set are sent.
    assert set(call2) == {"t", "id", "messages", "route"}


def test_frame_over_the_daemons_max_frame_is_not_sent(tmp_path):
    cap = Capture(str(tmp_path / "c.sock"), ok)
    with llmgate.Client(cap.path, timeout=5) as c:
        with pytest.raises(llmgate.InvalidRequest, match="too large"):
            c.call("x" * 5000)
        assert c.call("small").text == '{"name": "Ada"}'
    assert [m["t"] for m in cap.got] == ["hello", "call"]


def test_chunks_with_bytes_split_utf8_and_reset(tmp_path):
    snow = "☃".encode()

    def reply(m):
        if m["t"] != "call":
            return []
        i = m["id"]
        return [{"t": "chunk", "id": i, "text": "old"},
                {"t": "chunk", "id": i, "reset": True, "text": b"a" + snow[:1]},
                {"t": "chunk", "id": i, "text": snow[1:] + b"b"},
                {"t": "chunk", "id": i, "tool": {"index": 0, "id": "c1",
                                                 "name": "f", "args": '{"a"'}},
                {"t": "chunk", "id": i, "tool": {"index": 0, "args": ":1}"}},
                {"t": "result", "id": i, "text": "a☃b"}]
    cap = Capture(str(tmp_path / "c.sock"), reply)
    with llmgate.Client(cap.path, timeout=5) as c:
        s = c.stream("x")
        chunks = list(s)
        assert chunks[1].reset
        assert s.text == "a☃b" == s.result.text
        assert s._state.tool_calls()[0].args == {"a": 1}
    assert cap.got[1]["stream"] is True


def test_ids_of_concurrent_requests_are_distinct(tmp_path):
    def reply(m):
        return [{"t": "pong", "id": m["id"]}] if m["t"] == "ping" else []
    cap = Capture(str(tmp_path / "c.sock"), reply)
    with llmgate.Client(cap.path, timeout=5) as c:
        for _ in range(5):
            c.ping()
    ids = [m["id"] for m in cap.got[1:]]
    assert len(set(ids)) == 5 and 0 not in ids
