"""The asyncio client: one connection, any number of calls in flight."""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

from . import _call
from ._proto import FINAL, FrameReader, call_map, encode, socket_path, \
    text_of
from ._stream import StreamState, stream_timeout
from .client import _LOST, _RETRYABLE_CONNECT, _Lost, _connect_error, \
    _fill_from_exception, check_hello, hello_map
from .errors import DaemonUnavailable, InvalidRequest, LlmgateError, \
    ProtocolError, ReplyTimeout
from .types import Chunk, Lease, Result


class _AConn:
    """One connection; a reader task hands replies to per-id queues."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pending: Dict[int, "asyncio.Queue[Any]"] = {}
        self.next_id = 1
        self.dead: Optional[LlmgateError] = None
        self.notice: Optional[str] = None
        self.frames = FrameReader()
        self.server = ""
        self.max_frame = 0
        self.task: Optional["asyncio.Task[None]"] = None

    @classmethod
    async def open(cls, path: str, name: str, timeout: float) -> "_AConn":
        self = cls(path)
        try:
            self.r, self.w = await asyncio.wait_for(
                asyncio.open_unix_connection(path), timeout)
        except asyncio.TimeoutError:
            raise ReplyTimeout("connecting to llmgated at %s took over %gs"
                               % (path, timeout)) from None
        except OSError as e:
            raise _connect_error(path, e) from e
        try:
            self.w.write(encode(hello_map(name)))
            msg = await asyncio.wait_for(self._hello(), timeout)
            self.max_frame = check_hello(msg, path)
            self.server = text_of(msg.get("server")) or ""
        except LlmgateError:
            self.w.close()
            raise
        except asyncio.TimeoutError:
            self.w.close()
            raise ReplyTimeout("llmgated at %s did not answer hello within "
                               "%gs" % (path, timeout)) from None
        except OSError as e:
            self.w.close()
            raise DaemonUnavailable("%s during the handshake: %s"
                                    % (_LOST, e)) from None
        except BaseException:
            self.w.close()
            raise
        self.task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _hello(self) -> Dict[str, Any]:
        while True:
            msgs = self.frames.messages()
            if msgs:
                if len(msgs) > 1:
                    raise ProtocolError("llmgated sent more than its hello")
                return msgs[0]
            data = await self.r.read(65536)
            if not data:
                raise DaemonUnavailable(self._eof_reason())
            self.frames.feed(data)

    def _eof_reason(self) -> str:
        if self.notice:
            return "%s: %s" % (_LOST, self.notice)
        if self.frames.pending():
            return "%s: llmgated closed the connection in the middle of a " \
                   "frame" % _LOST
        return "%s: llmgated closed the connection" % _LOST

    async def _run(self) -> None:
        exc: LlmgateError
        try:
            while True:
                data = await self.r.read(262144)
                if not data:
                    exc = DaemonUnavailable(self._eof_reason())
                    break
                self.frames.feed(data)
                for msg in self.frames.messages():
                    self._dispatch(msg)
        except LlmgateError as e:
            exc = e
        except OSError as e:
            exc = DaemonUnavailable("%s: %s" % (_LOST, e))
        except asyncio.CancelledError:
            exc = DaemonUnavailable("connection closed")
        self._die(exc)

    def _dispatch(self, msg: Dict[str, Any]) -> None:
        rid = msg["id"]
        if rid == 0:
            if msg["t"] == "error":
                self.notice = text_of(msg.get("message"))
            return
        q = self.pending.get(rid)
        if q is not None:
            if msg["t"] in FINAL:
                del self.pending[rid]
            q.put_nowait(msg)

    def _die(self, exc: LlmgateError) -> None:
        if self.dead is None:
            self.dead = exc
        pend, self.pending = self.pending, {}
        for q in pend.values():
            q.put_nowait(_Lost(self.dead))
        self.w.close()

    async def close(self) -> None:
        self._die(DaemonUnavailable("connection closed"))
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task

    def request(self, msg: Dict[str, Any]) -> Tuple[int, "asyncio.Queue[Any]"]:
        if self.dead is None and self.w.is_closing():
            self._die(DaemonUnavailable(_LOST))
        if self.dead is not None:
            raise self.dead
        while True:
            rid = self.next_id
            self.next_id = self.next_id % 0xFFFFFFFF + 1
            if rid not in self.pending:
                break
        msg["id"] = rid
        frame = encode(msg)
        if len(frame) - 4 > self.max_frame:
            raise InvalidRequest("request too large: %d bytes, llmgated "
                                 "takes at most %d" % (len(frame) - 4,
                                                       self.max_frame))
        q: "asyncio.Queue[Any]" = asyncio.Queue()
        self.pending[rid] = q
        self.w.write(frame)
        return rid, q

    async def drain(self) -> bool:
        """Flush; False when the write failed (the daemon is gone)."""
        try:
            await self.w.drain()
        except OSError as e:
            self._die(DaemonUnavailable("%s: %s" % (_LOST, e)))
            return False
        return True

    def cancel(self, rid: int) -> None:
        """Stop call rid (synchronous: the frame is only buffered)."""
        self.pending.pop(rid, None)
        if self.dead is None and not self.w.is_closing():
            self.w.write(encode({"t": "cancel", "id": rid}))


async def _wait(q: "asyncio.Queue[Any]", timeout: Optional[float],
                what: str) -> Dict[str, Any]:
    try:
        msg = await asyncio.wait_for(q.get(), timeout)
    except asyncio.TimeoutError:
        raise ReplyTimeout("no answer from llmgated to %s within %gs"
                           % (what, timeout)) from None
    if isinstance(msg, _Lost):
        raise msg.exc
    return msg  # type: ignore[no-any-return]


class AsyncStream:
    """A streamed call for ``async for chunk in client.stream(...)``. The
    request goes out on the first iteration (or ``async with``);
    ``result`` holds the final Result once the loop ends. Leaving the loop
    early cancels the call in the daemon (at once with ``async with`` or
    aclose(), otherwise when the stream object is dropped)."""

    def __init__(self, client: "AsyncClient", req: Dict[str, Any],
                 opts: Dict[str, Any]) -> None:
        self._client = client
        self._req = req
        self._opts = opts
        self._conn: Optional[_AConn] = None
        self._rid = 0
        self._q: "Optional[asyncio.Queue[Any]]" = None
        self._state = StreamState()
        self._done = False
        self._timeout = stream_timeout(req, client.timeout)
        self.result: Optional[Result] = None

    @property
    def text(self) -> str:
        """The text streamed so far."""
        return self._state.text

    async def _start(self) -> None:
        if self._q is None:
            m = call_map(0, self._req)
            m["stream"] = True
            self._conn, self._rid, self._q = await self._client._request(m)

    def __aiter__(self) -> "AsyncStream":
        return self

    async def __anext__(self) -> Chunk:
        if self._done:
            raise StopAsyncIteration
        await self._start()
        assert self._q is not None
        try:
            msg = await _wait(self._q, self._timeout, "a streamed call")
        except BaseException:
            self.close()
            raise
        if msg["t"] == "chunk":
            return self._state.chunk(msg)
        self._done = True
        self.result = _call.finish(msg, self._req, self._opts, self._client)
        raise StopAsyncIteration

    def close(self) -> None:
        """Cancel the call if it has not ended."""
        if not self._done:
            self._done = True
            if self._conn is not None:
                self._conn.cancel(self._rid)

    async def aclose(self) -> None:
        self.close()
        if self._conn is not None:
            await self._conn.drain()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    async def __aenter__(self) -> "AsyncStream":
        await self._start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def until_done(self) -> Result:
        """Consume the rest of the stream; return the Result."""
        async for _ in self:
            pass
        assert self.result is not None
        return self.result


class AsyncClient:
    """The asyncio twin of Client: the same methods as coroutines, on one
    connection shared by every task of the event loop it is used in.
    ``async with llmgate.AsyncClient() as client: r = await
    client.call(...)``."""

    def __init__(self, socket: Optional[str] = None, *,
                 name: str = "llmgate-python", timeout: float = 300.0,
                 connect_timeout: float = 5.0) -> None:
        self.path = socket_path(socket)
        self.name = name
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._conn: Optional[_AConn] = None
        self._lock: Optional[asyncio.Lock] = None
        self._was_connected = False
        self._closed = False

    async def connect(self) -> "AsyncClient":
        """Open the connection now (raises DaemonUnavailable)."""
        await self._get()
        return self

    async def _get(self) -> _AConn:
        c = self._conn
        if c is not None and c.dead is None and not c.w.is_closing():
            return c
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._closed:
                raise DaemonUnavailable("the client is closed")
            c = self._conn
            if c is not None and c.dead is None and not c.w.is_closing():
                return c
            if c is not None:
                await c.close()
                self._conn = None
            deadline = time.monotonic() + (self.connect_timeout
                                           if self._was_connected else 0)
            delay = 0.01
            while True:
                try:
                    self._conn = await _AConn.open(self.path, self.name,
                                                   min(self.timeout, 30.0))
                    self._was_connected = True
                    return self._conn
                except DaemonUnavailable as e:
                    cause = e.__cause__
                    if time.monotonic() >= deadline or (
                            isinstance(cause, OSError) and
                            cause.errno not in _RETRYABLE_CONNECT):
                        raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)

    async def _request(self, msg: Dict[str, Any]) -> \
            Tuple[_AConn, int, "asyncio.Queue[Any]"]:
        for i in range(2):
            c = await self._get()
            try:
                rid, q = c.request(dict(msg))
            except DaemonUnavailable:
                if i == 1 or not self._was_connected:
                    raise
                continue
            if not await c.drain() and i == 0 and self._was_connected \
                    and q.qsize() == 1:
                # The daemon had gone before the request was written
                # (e.g. it restarted while this loop was busy): it never
                # saw it, so it goes out once more on a new connection.
                continue
            return c, rid, q
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close the connection; calls in flight end with DaemonUnavailable."""
        self._closed = True
        c, self._conn = self._conn, None
        if c is not None:
            await c.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def call(self, prompt: Optional[str] = None, *,
                   messages: Optional[List[Any]] = None,
                   **options: Any) -> Result:
        """One LLM call; see Client.call for the options."""
        prompt, messages, opts = _call.split(
            dict(options, prompt=prompt, messages=messages))
        req = _call.build(prompt, messages, opts)
        c, rid, q = await self._request(call_map(0, req))
        wait = stream_timeout(req, self.timeout)
        try:
            while True:
                msg = await _wait(q, wait, "a call")
                if msg["t"] != "chunk":
                    return _call.finish(msg, req, opts, self)
        except BaseException:
            # Timed out, or the task was cancelled: stop it in the daemon.
            c.cancel(rid)
            raise

    def stream(self, prompt: Optional[str] = None, *,
               messages: Optional[List[Any]] = None,
               **options: Any) -> AsyncStream:
        """``async for chunk in client.stream(...)``; see Client.stream."""
        prompt, messages, opts = _call.split(
            dict(options, prompt=prompt, messages=messages))
        return AsyncStream(self, _call.build(prompt, messages, opts), opts)

    async def resume(self, result: Result, message: Any = None,
                     **options: Any) -> Result:
        """See Client.resume."""
        opts = dict(result._options)
        opts.update(options)
        return await self.call(messages=result.conversation(message), **opts)

    async def run_tools(self, prompt: Optional[str] = None, *,
                        messages: Optional[List[Any]] = None,
                        max_tool_errors: int = 3, max_rounds: int = 16,
                        **options: Any) -> Result:
        """See Client.run_tools. Tools may be coroutine functions."""
        from .tools import aexecute
        res = await self.call(prompt, messages=messages, **options)
        errors = 0
        for _ in range(max_rounds):
            if not res.tool_calls:
                return res
            res.tool_outputs = await aexecute(res.tool_calls,
                                              res._options.get("tools"))
            failed = [o.error for o in res.tool_outputs if o.error]
            if failed:
                errors += 1
                if errors >= max_tool_errors:
                    raise failed[0]
            else:
                errors = 0
            res = await self.resume(res)
        if res.tool_calls:
            raise LlmgateError("the model still calls tools after %d rounds"
                               % max_rounds)
        return res

    async def _simple(self, msg: Dict[str, Any], want: str) -> Dict[str, Any]:
        c, rid, q = await self._request(msg)
        try:
            reply = await _wait(q, self.timeout, "'%s'" % msg["t"])
        except BaseException:
            c.pending.pop(rid, None)
            raise
        if reply["t"] == "error":
            raise _call.lease_error(reply)
        if reply["t"] != want:
            raise ProtocolError("llmgated answered '%s' with '%s'"
                                % (msg["t"], reply["t"]))
        return reply

    async def ping(self) -> float:
        """Round trip to the daemon, in seconds."""
        t0 = time.monotonic()
        await self._simple({"t": "ping"}, "pong")
        return time.monotonic() - t0

    async def status(self) -> Dict[str, Any]:
        """The daemon's live view; see Client.status."""
        body = (await self._simple({"t": "status"}, "status")).get("body")
        return body if isinstance(body, dict) else {}

    async def metrics(self) -> str:
        """The daemon's Prometheus metrics text."""
        return text_of((await self._simple({"t": "metrics"}, "metrics"))
                       .get("text")) or ""

    async def acquire(self, target: str, tokens: int = 0,
                      timeout: Optional[float] = None,
                      priority: Optional[str] = None) -> Lease:
        """See Client.acquire."""
        m = _call.acquire_map(0, target, tokens, timeout, priority)
        c, rid, q = await self._request(m)
        try:
            reply = await _wait(q, max(self.timeout, (timeout or 0) + 10),
                                "acquire")
        except BaseException:
            c.cancel(rid)
            raise
        if reply["t"] == "error":
            raise _call.lease_error(reply)
        lid = reply.get("lease")
        if reply["t"] != "lease" or not isinstance(lid, int):
            raise ProtocolError("llmgated answered acquire with '%s'"
                                % reply["t"])
        ttl = reply.get("ttl_ms")
        return Lease(id=lid, target=text_of(reply.get("target")) or target,
                     ttl_ms=ttl if isinstance(ttl, int) else 0)

    async def report(self, lease: Lease, status: Optional[int] = None,
                     retry_after: Optional[float] = None,
                     input_tokens: Optional[int] = None,
                     output_tokens: Optional[int] = None,
                     usage: Any = None) -> None:
        """See Client.report."""
        lease.report(status, retry_after, input_tokens, output_tokens, usage)
        if lease.reported:
            raise ValueError("lease %d was already reported" % lease.id)
        lease.reported = True
        await self._simple(_call.report_map(0, lease), "ok")

    @contextlib.asynccontextmanager
    async def lease(self, target: str, tokens: int = 0,
                    timeout: Optional[float] = None,
                    priority: Optional[str] = None) -> AsyncIterator[Lease]:
        """``async with client.lease(...) as l:``; see Client.lease."""
        lease = await self.acquire(target, tokens, timeout, priority)
        try:
            yield lease
        except BaseException as e:
            if not lease.reported:
                _fill_from_exception(lease, e)
                with contextlib.suppress(LlmgateError):
                    await self.report(lease)
            raise
        if not lease.reported:
            if lease.status is None:
                lease.status = 200
            await self.report(lease)


__all__ = ["AsyncClient", "AsyncStream"]
