"""The synchronous client: one connection, many calls in flight on it."""
from __future__ import annotations

import contextlib
import errno
import queue
import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

from . import _call
from ._proto import MAX_FRAME, VERSION, FINAL, FrameReader, call_map, encode, \
    socket_path, text_of
from ._stream import StreamState, closed_error, stream_timeout
from .errors import DaemonUnavailable, InvalidRequest, \
    LlmgateError, ProtocolError, ReplyTimeout
from .types import Chunk, Lease, Result

_RETRYABLE_CONNECT = (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN)
_LOST = "connection to llmgated lost"


class _Lost:
    """Put in a pending request's queue when the connection dies."""

    def __init__(self, exc: LlmgateError) -> None:
        self.exc = exc


def _connect_error(path: str, e: OSError) -> DaemonUnavailable:
    return DaemonUnavailable("cannot connect to llmgated at %s: %s"
                             % (path, e.strerror or e))


def hello_map(name: str) -> Dict[str, Any]:
    return {"t": "hello", "id": 0, "v": VERSION, "name": name}


def check_hello(msg: Dict[str, Any], path: str) -> int:
    """The daemon's max_frame from its hello, or raise why not."""
    if msg["t"] == "error":
        raise DaemonUnavailable("llmgated at %s refused the connection: %s"
                                % (path, text_of(msg.get("message"))
                                   or "no reason given"))
    if msg["t"] != "hello":
        raise ProtocolError("unexpected '%s' from llmgated at %s during the "
                            "handshake" % (msg["t"], path))
    mf = msg.get("max_frame")
    if not isinstance(mf, int) or mf <= 0 or mf > MAX_FRAME:
        mf = MAX_FRAME
    return mf


class _Conn:
    """One connection: a reader thread hands each reply to the queue of
    its request id."""

    def __init__(self, path: str, name: str, timeout: float) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.pending: Dict[int, "queue.SimpleQueue[Any]"] = {}
        self.next_id = 1
        self.dead: Optional[LlmgateError] = None
        self.notice: Optional[str] = None
        self.reader = FrameReader()
        self.server = ""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except OSError as e:
                raise _connect_error(path, e) from None
            try:
                sock.sendall(encode(hello_map(name)))
                msg = self._read_one(sock, timeout)
            except LlmgateError:
                raise
            except socket.timeout:
                raise ReplyTimeout("llmgated at %s did not answer hello "
                                   "within %gs" % (path, timeout)) from None
            except OSError as e:
                raise DaemonUnavailable("%s during the handshake: %s"
                                        % (_LOST, e)) from None
            self.max_frame = check_hello(msg, path)
            self.server = text_of(msg.get("server")) or ""
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="llmgate-reader")
        self.thread.start()

    def _read_one(self, sock: socket.socket, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.reader.messages()
            if msgs:
                if len(msgs) > 1:
                    raise ProtocolError("llmgated sent more than its hello")
                return msgs[0]
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                raise DaemonUnavailable(self._eof_reason())
            self.reader.feed(data)

    def _eof_reason(self) -> str:
        if self.notice:
            return "%s: %s" % (_LOST, self.notice)
        if self.reader.pending():
            return "%s: llmgated closed the connection in the middle of a " \
                   "frame" % _LOST
        return "%s: llmgated closed the connection" % _LOST

    def _run(self) -> None:
        exc: LlmgateError
        try:
            while True:
                try:
                    data = self.sock.recv(262144)
                except socket.timeout:
                    continue
                if not data:
                    exc = DaemonUnavailable(self._eof_reason())
                    break
                self.reader.feed(data)
                for msg in self.reader.messages():
                    self._dispatch(msg)
        except LlmgateError as e:
            exc = e
        except OSError as e:
            exc = DaemonUnavailable("%s: %s" % (_LOST, e))
        self._die(exc)

    def _dispatch(self, msg: Dict[str, Any]) -> None:
        rid = msg["id"]
        if rid == 0:
            if msg["t"] == "error":
                self.notice = text_of(msg.get("message"))
            return
        with self.lock:
            q = self.pending.get(rid)
            if q is not None and msg["t"] in FINAL:
                del self.pending[rid]
        if q is not None:
            q.put(msg)

    def _die(self, exc: LlmgateError) -> None:
        with self.lock:
            if self.dead is None:
                self.dead = exc
            pend, self.pending = self.pending, {}
        for q in pend.values():
            q.put(_Lost(self.dead))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._die(DaemonUnavailable("connection closed"))
        if self.thread is not threading.current_thread():
            self.thread.join(5)
        self.sock.close()

    def request(self, msg: Dict[str, Any]) -> "tuple[int, queue.SimpleQueue[Any]]":
        """Send msg under a new id; returns the id and its reply queue."""
        q: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        with self.lock:
            if self.dead is not None:
                raise self.dead
            while True:
                rid = self.next_id
                self.next_id = self.next_id % 0xFFFFFFFF + 1
                if rid not in self.pending:
                    break
            self.pending[rid] = q
        msg["id"] = rid
        frame = encode(msg)
        if len(frame) - 4 > self.max_frame:
            self.forget(rid)
            raise InvalidRequest("request too large: %d bytes, llmgated "
                                 "takes at most %d" % (len(frame) - 4,
                                                       self.max_frame))
        self.send(frame, rid)
        return rid, q

    def send(self, frame: bytes, rid: int = 0) -> None:
        try:
            with self.send_lock:
                self.sock.sendall(frame)
        except OSError as e:
            self.forget(rid)
            exc = DaemonUnavailable("%s: %s" % (_LOST, e))
            self._die(exc)
            raise exc from None

    def forget(self, rid: int) -> None:
        with self.lock:
            self.pending.pop(rid, None)

    def cancel(self, rid: int, forget: bool = True) -> None:
        """Ask the daemon to stop call rid. With forget, its answer is
        dropped; else the daemon's final answer (error class cancelled, or
        the result if it was on its way) still goes to the call's queue."""
        if forget:
            self.forget(rid)
        if self.dead is None:
            with contextlib.suppress(LlmgateError):
                self.send(encode({"t": "cancel", "id": rid}))


def _wait(q: "queue.SimpleQueue[Any]", timeout: Optional[float],
          what: str) -> Dict[str, Any]:
    try:
        msg = q.get(timeout=timeout)
    except queue.Empty:
        raise ReplyTimeout("no answer from llmgated to %s within %gs"
                           % (what, timeout or 0)) from None
    if isinstance(msg, _Lost):
        raise msg.exc
    return msg  # type: ignore[no-any-return]


class Stream:
    """A streamed call. Iterate for Chunk objects; once the loop ends,
    ``result`` holds the final Result (usage, attempts). A failed call
    raises its CallError from the loop. Leaving the loop early (``break``),
    close() or the end of a ``with`` block cancels the call in the daemon.
    cancel() (from another thread, or between two chunks) stops the call
    while it is being iterated: the loop raises llmgate.Cancelled.
    """

    def __init__(self, client: "Client", conn: _Conn, rid: int,
                 q: "queue.SimpleQueue[Any]", req: Dict[str, Any],
                 opts: Dict[str, Any]) -> None:
        self._client = client
        self._conn = conn
        self._rid = rid
        self._q = q
        self._req = req
        self._opts = opts
        self._state = StreamState()
        self._done = False
        self._closed = False
        self._cancelled = False
        self._timeout = stream_timeout(req, client.timeout)
        self.result: Optional[Result] = None

    @property
    def text(self) -> str:
        """The text streamed so far."""
        return self._state.text

    def __iter__(self) -> Iterator[Chunk]:
        if self._closed:
            raise closed_error()
        try:
            while not self._done:
                msg = _wait(self._q, self._timeout, "a streamed call")
                if msg["t"] == "chunk":
                    yield self._state.chunk(msg)
                    continue
                self._done = True
                # A streamed result leaves out the text its chunks carried.
                if msg.get("streamed") is True and msg.get("text") is None:
                    msg["text"] = self._state.text
                self.result = _call.finish(msg, self._req, self._opts,
                                           self._client)
        finally:
            self.close()

    def cancel(self) -> None:
        """Cancel the call in the daemon if it has not ended; the loop
        iterating this stream (now or next) raises llmgate.Cancelled, or
        ends normally if the result was already on its way."""
        if not self._done and not self._cancelled:
            self._cancelled = True
            self._conn.cancel(self._rid, forget=False)

    def close(self) -> None:
        """Cancel the call if it has not ended; nothing waits for its
        answer (iterating the stream again raises llmgate.Cancelled)."""
        if not self._done:
            self._done = True
            self._closed = True
            self._conn.cancel(self._rid)

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def until_done(self) -> Result:
        """Consume the rest of the stream; return the Result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result


class Client:
    """A connection to llmgated, safe to share between threads.

    ``Client(socket=None, *, name="llmgate-python", timeout=300.0,
    connect_timeout=5.0)``. The socket is the explicit path, else
    ``$LLMGATE_SOCKET``, else ``/run/llmgate/llmgate.sock``. ``timeout``
    bounds every wait for the daemon (a call with a longer ``timeout=`` of
    its own waits that long plus 10 s); ``connect_timeout`` is how long a
    lost connection is retried, e.g. while the daemon restarts. The connection is opened
    on first use (or by connect()) and reopened after it was lost.
    """

    def __init__(self, socket: Optional[str] = None, *,
                 name: str = "llmgate-python", timeout: float = 300.0,
                 connect_timeout: float = 5.0) -> None:
        self.path = socket_path(socket)
        self.name = name
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: Optional[_Conn] = None
        self._was_connected = False
        self._closed = False

    # -- connection --------------------------------------------------------

    def connect(self) -> "Client":
        """Open the connection now (raises DaemonUnavailable)."""
        self._get()
        return self

    def _get(self) -> _Conn:
        with self._lock:
            if self._closed:
                raise DaemonUnavailable("the client is closed")
            c = self._conn
            if c is not None and c.dead is None:
                return c
            if c is not None:
                c.close()
                self._conn = None
            # After a loss the daemon may be restarting: retry a while.
            deadline = time.monotonic() + (self.connect_timeout
                                           if self._was_connected else 0)
            delay = 0.01
            while True:
                try:
                    self._conn = _Conn(self.path, self.name,
                                       min(self.timeout, 30.0))
                    self._was_connected = True
                    return self._conn
                except DaemonUnavailable as e:
                    cause = e.__cause__ or e.__context__
                    if time.monotonic() >= deadline or (
                            isinstance(cause, OSError) and
                            cause.errno not in _RETRYABLE_CONNECT):
                        raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _request(self, msg: Dict[str, Any]) -> "tuple[_Conn, int, queue.SimpleQueue[Any]]":
        """Send on the connection, reconnecting once if it turned out to be
        dead before the request went out (so the daemon never saw it)."""
        for i in range(2):
            c = self._get()
            try:
                rid, q = c.request(dict(msg))
                return c, rid, q
            except DaemonUnavailable:
                if i == 1 or not self._was_connected:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection; calls in flight end with DaemonUnavailable."""
        with self._lock:
            self._closed = True
            c, self._conn = self._conn, None
        if c is not None:
            c.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def server(self) -> str:
        """The daemon's name and version, from its hello."""
        return self._get().server

    # -- calls -------------------------------------------------------------

    def call(self, prompt: Optional[str] = None, *,
             messages: Optional[List[Any]] = None, **options: Any) -> Result:
        """One LLM call, answered by the first target of the chain that
        succeeds.

        prompt= (one user turn) or messages=[{"role", "content", ...}];
        models=["provider/model", ...] (the fallback chain; an entry may
        also name a pool of the daemon's config) or route= (a named
        chain; neither: the daemon's default route); system=,
        tools= (``@llmgate.tool`` functions or dicts), schema= (a JSON
        Schema dict or a pydantic model class: the daemon validates and
        repairs, ``result.parsed`` holds the parsed reply), max_tokens=,
        temperature=, top_p=, seed=, stop=, priority= ("high", "normal",
        "low"), timeout= (seconds for the whole call), attempts= (per
        target), on_cut= ("resume", "restart", "fail"), fallback_on=
        (error class names that lead to the next target; others end the
        call), reject= (reply conditions that turn a reply down and move
        on: "length", "content_filter", "refusal", "empty",
        "match:REGEX"; the last target's rejection raises Rejected),
        tool_choice= ("auto", "none", "required", or {"name": TOOL} or a
        tool function: the model must call that one).

        Returns a Result; raises the CallError subclass of the error class
        (with every attempt) or DaemonUnavailable.
        """
        prompt, messages, opts = _call.split(
            dict(options, prompt=prompt, messages=messages))
        req = _call.build(prompt, messages, opts)
        c, rid, q = self._request(call_map(0, req))
        wait = stream_timeout(req, self.timeout)
        try:
            while True:
                msg = _wait(q, wait, "a call")
                if msg["t"] != "chunk":
                    break
        except BaseException:
            # Timed out or interrupted (KeyboardInterrupt): stop it there.
            c.cancel(rid)
            raise
        return _call.finish(msg, req, opts, self)

    def stream(self, prompt: Optional[str] = None, *,
               messages: Optional[List[Any]] = None,
               **options: Any) -> Stream:
        """Like call(), streamed: ``for chunk in client.stream(...)``.
        The Stream's ``result`` is set when the loop ends."""
        prompt, messages, opts = _call.split(
            dict(options, prompt=prompt, messages=messages))
        req = _call.build(prompt, messages, opts)
        m = call_map(0, req)
        m["stream"] = True
        c, rid, q = self._request(m)
        return Stream(self, c, rid, q, req, opts)

    def resume(self, result: Result, message: Any = None,
               **options: Any) -> Result:
        """Continue result's conversation with its reply, the outputs of
        result.execute_tools() and message (a new user turn); the other
        options are the original call's unless given."""
        opts = dict(result._options)
        opts.update(options)
        return self.call(messages=result.conversation(message), **opts)

    def run_tools(self, prompt: Optional[str] = None, *,
                  messages: Optional[List[Any]] = None,
                  max_tool_errors: int = 3, max_rounds: int = 16,
                  **options: Any) -> Result:
        """Call, run the tools the model calls, send their outputs back,
        and repeat until the model answers without calling a tool. A tool
        that raises has its error fed back to the model; after
        ``max_tool_errors`` rounds in a row with a failing tool, that
        tool's exception is raised."""
        res = self.call(prompt, messages=messages, **options)
        return _tool_loop(res, max_tool_errors, max_rounds,
                          lambda r: self.resume(r))

    # -- small requests ----------------------------------------------------

    def _simple(self, msg: Dict[str, Any], want: str) -> Dict[str, Any]:
        c, rid, q = self._request(msg)
        try:
            reply = _wait(q, self.timeout, "'%s'" % msg["t"])
        except ReplyTimeout:
            c.forget(rid)
            raise
        if reply["t"] == "error":
            raise _call.lease_error(reply)
        if reply["t"] != want:
            raise ProtocolError("llmgated answered '%s' with '%s'"
                                % (msg["t"], reply["t"]))
        return reply

    def ping(self) -> float:
        """Round trip to the daemon, in seconds."""
        t0 = time.monotonic()
        self._simple({"t": "ping"}, "pong")
        return time.monotonic() - t0

    def status(self) -> Dict[str, Any]:
        """The daemon's live view (as ``llmgate status --json``): targets
        with their breakers, limits and cooldowns, the retry budget,
        counters, and the providers' base URLs."""
        body = self._simple({"t": "status"}, "status").get("body")
        return body if isinstance(body, dict) else {}

    def metrics(self) -> str:
        """The daemon's Prometheus metrics text."""
        return text_of(self._simple({"t": "metrics"}, "metrics").get(
            "text")) or ""

    def reload(self) -> None:
        """Ask the daemon to re-read its config (root or its user)."""
        self._simple({"t": "reload"}, "ok")

    # -- leases ------------------------------------------------------------

    def acquire(self, target: str, tokens: int = 0,
                timeout: Optional[float] = None,
                priority: Optional[str] = None) -> Lease:
        """Wait until the machine-wide budget admits one request to target
        ("provider/model", or a pool's name: the lease is then on the
        member the daemon chose, named by the Lease's target); raises the
        CallError of a refusal (Deadline, CircuitOpen, NotFound...)."""
        m = _call.acquire_map(0, target, tokens, timeout, priority)
        c, rid, q = self._request(m)
        wait = None if self.timeout is None else \
            max(self.timeout, (timeout or 0) + 10)
        try:
            reply = _wait(q, wait, "acquire")
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

    def report(self, lease: Lease, status: Optional[int] = None,
               retry_after: Optional[float] = None,
               input_tokens: Optional[int] = None,
               output_tokens: Optional[int] = None,
               usage: Any = None) -> None:
        """Tell the daemon how a leased request went (once per lease)."""
        lease.report(status, retry_after, input_tokens, output_tokens, usage)
        if lease.reported:
            raise ValueError("lease %d was already reported" % lease.id)
        lease.reported = True
        self._simple(_call.report_map(0, lease), "ok")

    @contextlib.contextmanager
    def lease(self, target: str, tokens: int = 0,
              timeout: Optional[float] = None,
              priority: Optional[str] = None) -> Iterator[Lease]:
        """``with client.lease("openai/gpt-4o-mini", tokens=1500) as l:``
        acquires, runs the block and reports on exit: what the block gave
        to ``l.report(...)``; else, if it raised, the exception's HTTP
        status and Retry-After (openai, anthropic, httpx errors), a
        connection failure for connection and timeout errors; else
        success."""
        lease = self.acquire(target, tokens, timeout, priority)
        try:
            yield lease
        except BaseException as e:
            if not lease.reported:
                _fill_from_exception(lease, e)
                with contextlib.suppress(LlmgateError):
                    self.report(lease)
            raise
        if not lease.reported:
            if lease.status is None:
                lease.status = 200
            self.report(lease)


def _fill_from_exception(lease: Lease, e: BaseException) -> None:
    if lease.status is not None:
        return
    status, retry = _call.exception_outcome(e)
    if status == 0 and not _is_transport_error(e):
        status = 200    # the caller's own error says nothing of the provider
    lease.status = status
    if lease.retry_after is None:
        lease.retry_after = retry


def _is_transport_error(e: BaseException) -> bool:
    if isinstance(e, (OSError, TimeoutError)):
        return True
    names = [k.__name__ for k in type(e).__mro__]
    return any(n in ("TransportError", "APIConnectionError", "APITimeoutError")
               or "Connection" in n or "Timeout" in n for n in names)


def _tool_loop(res: Result, max_tool_errors: int, max_rounds: int,
               again: Any) -> Result:
    errors = 0
    for _ in range(max_rounds):
        if not res.tool_calls:
            return res
        outs = res.execute_tools()
        failed = [o.error for o in outs if o.error is not None]
        if failed:
            errors += 1
            if errors >= max_tool_errors:
                raise failed[0]
        else:
            errors = 0
        res = again(res)
    if res.tool_calls:
        raise LlmgateError("the model still calls tools after %d rounds"
                           % max_rounds)
    return res


__all__ = ["Client", "Stream"]
