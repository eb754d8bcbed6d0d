"""The asyncio client: one connection, any number of calls in flight."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

from . import _call
from ._common import LOST, ClientBase, ConnState, Lost, StreamBase, \
    ToolRounds, cancelling, check_hello, connect_error, hello_map, \
    lease_ended, lease_failed, lease_of, metrics_of, reply_of, report_map, \
    status_of
from ._proto import call_map, encode, text_of
from ._stream import closed_error, stream_timeout
from .errors import Cancelled, DaemonUnavailable, LlmgateError, \
    ProtocolError, ReplyTimeout
from .types import Chunk, Lease, Result


class _Pending:
    """The replies of one request, and the task waiting for them."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: "collections.deque[Any]" = collections.deque()
        self.waiter: "Optional[asyncio.Future[None]]" = None

    def put(self, item: Any) -> None:
        self.items.append(item)
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def qsize(self) -> int:
        return len(self.items)


class _AConn(ConnState[_Pending], asyncio.Protocol):
    """One connection, as an asyncio Protocol: data_received() splits
    frames and hands each reply to its request's _Pending."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.transport: Optional[asyncio.Transport] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.hello: Optional[_Pending] = _Pending()
        self.paused = False
        self.resumed: "Optional[asyncio.Future[None]]" = None
        # Frames of the current loop iteration, written together by
        # _flush(): one send for many calls instead of one each.
        self.out: List[bytes] = []
        self.flushed: "Optional[asyncio.Future[None]]" = None

    @classmethod
    async def open(cls, path: str, name: str, timeout: float) -> "_AConn":
        loop = asyncio.get_running_loop()
        self = cls(path)
        self.loop = loop
        try:
            await asyncio.wait_for(
                loop.create_unix_connection(lambda: self, path), timeout)
        except asyncio.TimeoutError:
            raise ReplyTimeout("connecting to llmgated at %s took over %gs"
                               % (path, timeout)) from None
        except OSError as e:
            raise connect_error(path, e) from e
        assert self.transport is not None and self.hello is not None
        try:
            self.transport.write(encode(hello_map(name)))
            msg = await _wait(self.hello, timeout, "hello")
            self.max_frame = check_hello(msg, path)
            self.server = text_of(msg.get("server")) or ""
        except ReplyTimeout:
            self.transport.close()
            raise ReplyTimeout("llmgated at %s did not answer hello within "
                               "%gs" % (path, timeout)) from None
        except BaseException:
            self.transport.close()
            raise
        finally:
            self.hello = None
        return self

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.frames.feed(data)
        try:
            msgs = self.frames.messages()
        except LlmgateError as e:
            self._die(e)
            return
        for msg in msgs:
            if self.hello is not None:
                if self.frames.pending() or len(msgs) > 1:
                    self._die(ProtocolError("llmgated sent more than its "
                                            "hello"))
                    return
                self.hello.put(msg)
                return
            self._dispatch(msg)

    def eof_received(self) -> Optional[bool]:
        self._die(DaemonUnavailable(self.eof_reason()))
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if exc is not None:
            self._die(DaemonUnavailable("%s: %s" % (LOST, exc)))
        else:
            self._die(DaemonUnavailable(self.eof_reason()))

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)

    # ------------------------------------------------------------------------

    def _dispatch(self, msg: Dict[str, Any]) -> None:
        p = self.route(msg)
        if p is not None:
            p.put(msg)

    def _die(self, exc: LlmgateError) -> None:
        if self.dead is None:
            self.dead = exc
        pend, self.pending = self.pending, {}
        if self.hello is not None:
            pend[0] = self.hello
        for p in pend.values():
            p.put(Lost(self.dead))
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)
        if self.transport is not None:
            # RuntimeError: its event loop is closed already.
            with contextlib.suppress(RuntimeError):
                self.transport.close()

    def alive(self) -> bool:
        return self.dead is None and self.transport is not None and \
            not self.transport.is_closing()

    async def close(self) -> None:
        self._die(DaemonUnavailable("connection closed"))

    def request(self, msg: Dict[str, Any]) -> Tuple[int, _Pending]:
        if self.dead is None and not self.alive():
            self._die(DaemonUnavailable(LOST))
        if self.dead is not None:
            raise self.dead
        rid = self.new_id()
        frame = self.frame(msg, rid)
        p = _Pending()
        self.pending[rid] = p
        self._queue(frame)
        return rid, p

    def _queue(self, frame: bytes) -> None:
        self.out.append(frame)
        if self.flushed is None:
            self.flushed = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        out, self.out = self.out, []
        fut, self.flushed = self.flushed, None
        if out and self.alive():
            assert self.transport is not None
            self.transport.write(b"".join(out))
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def drain(self) -> bool:
        """Wait until this iteration's frames are written and while the
        socket's buffer is full; False when the connection died (the
        daemon is gone)."""
        if self.flushed is not None:
            await asyncio.shield(self.flushed)
        while self.paused and self.dead is None:
            self.resumed = asyncio.get_running_loop().create_future()
            await self.resumed
        if self.dead is None and not self.alive():
            # The write failed at once (the daemon had gone): the
            # transport is closing and connection_lost() is yet to come.
            self._die(DaemonUnavailable("%s: the daemon closed the "
                                        "connection" % LOST))
        return self.dead is None

    def cancel(self, rid: int, forget: bool = True) -> None:
        """Stop call rid (synchronous: the frame is only buffered). With
        forget, its answer is dropped; else the daemon's final answer
        (error class cancelled, or the result if it was on its way) still
        goes to the call's waiter."""
        if forget:
            self.pending.pop(rid, None)
        if self.alive():
            try:
                self._queue(encode({"t": "cancel", "id": rid}))
            except RuntimeError:    # no running loop (a stream's __del__)
                assert self.transport is not None
                self.transport.write(encode({"t": "cancel", "id": rid}))


def _expire(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_exception(asyncio.TimeoutError())


async def _wait(p: _Pending, timeout: Optional[float],
                what: str) -> Dict[str, Any]:
    """The next reply of a request; a timer (not a task per wait) bounds
    the wait."""
    while not p.items:
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[None]" = loop.create_future()
        p.waiter = fut
        timer = loop.call_later(timeout, _expire, fut) \
            if timeout is not None else None
        try:
            await fut
        except asyncio.TimeoutError:
            raise ReplyTimeout("no answer from llmgated to %s within %gs"
                               % (what, timeout or 0)) from None
        finally:
            p.waiter = None
            if timer is not None:
                timer.cancel()
    msg = p.items.popleft()
    if isinstance(msg, Lost):
        raise msg.exc
    return msg  # type: ignore[no-any-return]


async def _final(p: _Pending, timeout: Optional[float]) -> Dict[str, Any]:
    """A call's final frame, past its chunks."""
    while True:
        msg = await _wait(p, timeout, "a call")
        if msg["t"] != "chunk":
            return msg


class AsyncStream(StreamBase):
    """A streamed call for ``async for chunk in client.stream(...)``. The
    request goes out on the first iteration (or ``async with``);
    ``result`` holds the final Result once the loop ends. Leaving the loop
    early cancels the call in the daemon (at once with ``async with`` or
    aclose(), otherwise when the stream object is dropped). cancel() stops
    the call while it is being iterated: the loop, in whichever task runs
    it, raises llmgate.Cancelled."""

    def __init__(self, client: "AsyncClient", req: Dict[str, Any],
                 opts: Dict[str, Any]) -> None:
        super().__init__(client, req, opts)
        self._aclient = client
        self._conn: Optional[_AConn] = None
        self._q: Optional[_Pending] = None

    async def _start(self) -> None:
        if self._q is None:
            if self._cancelled:
                self._done = True
                raise Cancelled("the call was cancelled before it was sent")
            self._conn, self._rid, self._q = await self._aclient._request(
                _call.stream_map(self._req))

    def __aiter__(self) -> "AsyncStream":
        return self

    async def __anext__(self) -> Chunk:
        if self._done:
            if self._closed:
                raise closed_error()
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
        self._end(msg)
        raise StopAsyncIteration

    def _send_cancel(self, forget: bool) -> None:
        if self._conn is not None:
            self._conn.cancel(self._rid, forget=forget)

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


class AsyncClient(ClientBase):
    """The asyncio twin of Client: the same methods as coroutines, on one
    connection shared by every task of the event loop it is used in.
    ``async with llmgate.AsyncClient() as client: r = await
    client.call(...)``."""

    def __init__(self, socket: Optional[str] = None, *,
                 name: str = "llmgate-python", timeout: float = 300.0,
                 connect_timeout: float = 5.0) -> None:
        super().__init__(socket, name=name, timeout=timeout,
                         connect_timeout=connect_timeout)
        self._conn: Optional[_AConn] = None
        self._lock: Optional[asyncio.Lock] = None

    async def connect(self) -> "AsyncClient":
        """Open the connection now (raises DaemonUnavailable)."""
        await self._get()
        return self

    async def _get(self) -> _AConn:
        c = self._conn
        loop = asyncio.get_running_loop()
        if c is not None and c.alive() and c.loop is loop:
            return c
        if c is not None and c.loop is not loop:
            # Used from another event loop (a second asyncio.run()): the
            # old connection belongs to the old loop; leave it.
            c.dead = c.dead or DaemonUnavailable("connection closed")
            self._conn = None
            self._lock = None
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._closed:
                raise DaemonUnavailable("the client is closed")
            c = self._conn
            if c is not None and c.alive():
                return c
            if c is not None:
                await c.close()
                self._conn = None
            retry = self._connect_retry()
            while True:
                try:
                    self._conn = await _AConn.open(self.path, self.name,
                                                   min(self.timeout, 30.0))
                    self._was_connected = True
                    return self._conn
                except DaemonUnavailable as e:
                    delay = retry.failed(e)
                await asyncio.sleep(delay)

    async def _request(self, msg: Dict[str, Any]) -> \
            Tuple[_AConn, int, _Pending]:
        for i in range(2):
            c = await self._get()
            try:
                rid, q = c.request(dict(msg))
            except DaemonUnavailable:
                if i == 1 or not self._was_connected:
                    raise
                continue
            try:
                written = await c.drain()
            except BaseException:
                # The task was cancelled with the request already queued:
                # the daemon gets it, and the cancel after it.
                c.cancel(rid)
                raise
            if not written and i == 0 and self._was_connected \
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
        req, opts = _call.prepare(prompt, messages, options)
        c, rid, q = await self._request(call_map(0, req))
        with cancelling(c, rid):
            msg = await _final(q, stream_timeout(req, self.timeout))
        return _call.finish(msg, req, opts, self)

    def stream(self, prompt: Optional[str] = None, *,
               messages: Optional[List[Any]] = None,
               **options: Any) -> AsyncStream:
        """``async for chunk in client.stream(...)``; see Client.stream."""
        req, opts = _call.prepare(prompt, messages, options)
        return AsyncStream(self, req, opts)

    async def resume(self, result: Result, message: Any = None,
                     **options: Any) -> Result:
        """See Client.resume."""
        return await self.call(messages=result.conversation(message),
                               **_call.resume_options(result, options))

    async def run_tools(self, prompt: Optional[str] = None, *,
                        messages: Optional[List[Any]] = None,
                        max_tool_errors: int = 3, max_rounds: int = 16,
                        **options: Any) -> Result:
        """See Client.run_tools. Tools may be coroutine functions."""
        from .tools import aexecute
        rounds = ToolRounds(max_tool_errors, max_rounds)
        res = await self.call(prompt, messages=messages, **options)
        for _ in range(max_rounds):
            if not res.tool_calls:
                return res
            res.tool_outputs = await aexecute(res.tool_calls,
                                              res._options.get("tools"))
            rounds.outputs(res.tool_outputs)
            res = await self.resume(res)
        return rounds.done(res)

    async def _simple(self, msg: Dict[str, Any], want: str) -> Dict[str, Any]:
        c, rid, q = await self._request(msg)
        try:
            reply = await _wait(q, self.timeout, "'%s'" % msg["t"])
        except BaseException:
            c.pending.pop(rid, None)
            raise
        return reply_of(msg, reply, want)

    async def ping(self) -> float:
        """Round trip to the daemon, in seconds."""
        t0 = time.monotonic()
        await self._simple({"t": "ping"}, "pong")
        return time.monotonic() - t0

    async def status(self) -> Dict[str, Any]:
        """The daemon's live view; see Client.status."""
        return status_of(await self._simple({"t": "status"}, "status"))

    async def metrics(self) -> str:
        """The daemon's Prometheus metrics text."""
        return metrics_of(await self._simple({"t": "metrics"}, "metrics"))

    async def acquire(self, target: str, tokens: int = 0,
                      timeout: Optional[float] = None,
                      priority: Optional[str] = None) -> Lease:
        """See Client.acquire."""
        m = _call.acquire_map(0, target, tokens, timeout, priority)
        c, rid, q = await self._request(m)
        with cancelling(c, rid):
            reply = await _wait(q, self._acquire_wait(timeout), "acquire")
        return lease_of(reply, target)

    async def report(self, lease: Lease, status: Optional[int] = None,
                     retry_after: Optional[float] = None,
                     input_tokens: Optional[int] = None,
                     output_tokens: Optional[int] = None,
                     usage: Any = None) -> None:
        """See Client.report."""
        await self._simple(report_map(lease, status, retry_after,
                                      input_tokens, output_tokens, usage),
                           "ok")

    @contextlib.asynccontextmanager
    async def lease(self, target: str, tokens: int = 0,
                    timeout: Optional[float] = None,
                    priority: Optional[str] = None) -> AsyncIterator[Lease]:
        """``async with client.lease(...) as l:``; see Client.lease."""
        lease = await self.acquire(target, tokens, timeout, priority)
        try:
            yield lease
        except BaseException as e:
            if lease_failed(lease, e):
                with contextlib.suppress(LlmgateError):
                    await self.report(lease)
            raise
        if lease_ended(lease):
            await self.report(lease)


__all__ = ["AsyncClient", "AsyncStream"]
