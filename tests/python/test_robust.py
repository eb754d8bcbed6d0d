"""Bad daemons give clear exceptions, never a hang; restarts reconnect."""
import asyncio
import socket
import struct
import threading
import time

import msgpack
import pytest

import llmgate
from conftest import SLOW, wait_for


def frame(obj):
    b = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(b)) + b


HELLO = frame({"t": "hello", "id": 0, "v": 1, "server": "fake"})


class FakeDaemon:
    """A Unix socket server that answers hello (or not) and then sends
    what the test says for the first request."""

    def __init__(self, path, hello=HELLO, after=b"", close=True):
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.hello, self.after, self.close = hello, after, close
        self.conns = []
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            try:
                c.recv(65536)           # the client's hello
                c.sendall(self.hello)
                if self.after is None:
                    continue            # say nothing more, stay open
                c.recv(65536)           # its first request
                c.sendall(self.after)
                if self.close:
                    c.close()
            except OSError:
                pass

    def stop(self):
        self.srv.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def fake(tmp_path):
    made = []

    def make(**kw):
        d = FakeDaemon(str(tmp_path / ("f%d.sock" % len(made))), **kw)
        made.append(d)
        return d
    yield make
    for d in made:
        d.stop()


BAD = [
    ("not msgpack", b"\x00\x00\x00\x02\xc1\xc1", llmgate.ProtocolError,
     "does not decode"),
    ("not a map", frame([1, 2, 3]), llmgate.ProtocolError, "not a map"),
    ("no type", frame({"id": 1}), llmgate.ProtocolError, "'t'"),
    ("empty frame", b"\x00\x00\x00\x00", llmgate.ProtocolError, "0 bytes"),
    ("huge frame", b"\x7f\xff\xff\xff", llmgate.ProtocolError, "announcing"),
    ("trailing bytes", b"\x00\x00\x00\x02\x80\x80", llmgate.ProtocolError,
     "does not decode"),
    ("closed mid-frame", b"\x00\x00\x01\x00\x85", llmgate.DaemonUnavailable,
     "middle of a frame"),
    ("closed", b"", llmgate.DaemonUnavailable, "closed the connection"),
]


@pytest.mark.parametrize("name,data,exc,words", BAD, ids=[b[0] for b in BAD])
def test_garbage_after_hello(fake, name, data, exc, words):
    d = fake(after=data)
    c = llmgate.Client(d.path, timeout=5)
    t0 = time.monotonic()
    with pytest.raises(exc, match=words):
        c.call("x")
    assert time.monotonic() - t0 < 4
    c.close()


@pytest.mark.parametrize("name,data,exc,words", BAD, ids=[b[0] for b in BAD])
def test_garbage_after_hello_async(fake, name, data, exc, words):
    d = fake(after=data)

    async def main():
        c = llmgate.AsyncClient(d.path, timeout=5)
        with pytest.raises(exc, match=words):
            await c.call("x")
        await c.close()
    asyncio.run(asyncio.wait_for(main(), 10))


def test_garbage_instead_of_hello(fake):
    d = fake(hello=b"HTTP/1.1 400 Bad Request\r\n\r\n", after=None)
    with pytest.raises(llmgate.ProtocolError):
        llmgate.Client(d.path, timeout=5).connect()


def test_refused_hello(fake):
    d = fake(hello=frame({"t": "error", "id": 0, "class": "invalid_request",
                          "message": "protocol version 1 not supported"}),
             after=None)
    with pytest.raises(llmgate.DaemonUnavailable, match="not supported"):
        llmgate.Client(d.path, timeout=5).connect()


def test_silent_daemon_times_out(fake):
    d = fake(hello=b"", after=None)         # never answers hello
    t0 = time.monotonic()
    with pytest.raises(llmgate.ReplyTimeout):
        llmgate.Client(d.path, timeout=0.3).connect()
    d2 = fake(after=None)                    # answers hello, then nothing
    c = llmgate.Client(d2.path, timeout=0.3)
    with pytest.raises(llmgate.ReplyTimeout):
        c.call("x")
    with pytest.raises(llmgate.ReplyTimeout):
        for _ in c.stream("x"):
            pass
    with pytest.raises(llmgate.ReplyTimeout):
        c.status()

    async def main():
        ac = llmgate.AsyncClient(d2.path, timeout=0.3)
        with pytest.raises(llmgate.ReplyTimeout):
            await ac.call("x")
        await ac.close()
    asyncio.run(main())
    assert time.monotonic() - t0 < 5


def test_pending_calls_fail_when_connection_drops(fake):
    d = fake(after=b"\x00\x00\x00\x10abc")   # a partial frame, then EOF
    c = llmgate.Client(d.path, timeout=5)
    errs = []

    def work():
        try:
            c.call("x")
        except llmgate.DaemonUnavailable as e:
            errs.append(e)
    ts = [threading.Thread(target=work) for _ in range(5)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert len(errs) == 5


def test_daemon_restart_while_connected(own_daemon):
    d = own_daemon()
    with llmgate.Client(d.sock, timeout=30 * SLOW,
                        connect_timeout=10 * SLOW) as c:
        assert c.call("before", models=["mock/echo"]).text == "echo: before"
        pid = d.proc.pid
        assert d.stop() == 0
        d.start()
        assert d.proc.pid != pid
        # The same client reconnects by itself.
        assert c.call("after", models=["mock/echo"]).text == "echo: after"
        assert c.status()["clients"] == 1


def test_daemon_restart_async(own_daemon):
    d = own_daemon()

    async def main():
        async with llmgate.AsyncClient(d.sock, timeout=30 * SLOW,
                                       connect_timeout=10 * SLOW) as c:
            assert (await c.call("a", models=["mock/echo"])).text == \
                "echo: a"
            assert d.stop() == 0
            d.start()
            assert (await c.call("b", models=["mock/echo"])).text == \
                "echo: b"
    asyncio.run(asyncio.wait_for(main(), 60 * SLOW))


def test_call_in_flight_when_daemon_dies(own_daemon):
    d = own_daemon()
    c = llmgate.Client(d.sock, timeout=30 * SLOW)
    c.connect()
    out = []

    def work():
        try:
            c.call("x", models=["mock/slow:30000"])
        except Exception as e:  # what the caller sees
            out.append(e)
    t = threading.Thread(target=work)
    t.start()
    wait_for(lambda: c.status()["inflight"] == 1, 5, "the call in flight")
    d.killed = True
    d.proc.kill()
    d.proc.wait()
    t.join(10 * SLOW)
    assert len(out) == 1 and isinstance(out[0], llmgate.DaemonUnavailable)
    c.close()


def test_daemon_gone_for_good(own_daemon):
    d = own_daemon()
    c = llmgate.Client(d.sock, timeout=30 * SLOW, connect_timeout=0.3)
    assert c.call("x", models=["mock/echo"]).text == "echo: x"
    assert d.stop() == 0
    t0 = time.monotonic()
    with pytest.raises(llmgate.DaemonUnavailable, match="cannot connect"):
        c.call("y", models=["mock/echo"])
    # It tried for connect_timeout, not longer.
    assert time.monotonic() - t0 < 3 * SLOW
    c.close()
