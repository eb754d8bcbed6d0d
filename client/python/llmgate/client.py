"""The synchronous client: one connection, many calls in flight on it."""
from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

from . import _call
from ._common import LOST, ClientBase, ConnState, Lost, StreamBase, \
    ToolRounds, cancelling, check_hello, connect_error, hello_map, \
    lease_ended, lease_failed, lease_of, metrics_of, reply_of, report_map, \
    status_of
from ._proto import call_map, encode, text_of
from ._stream import closed_error, stream_timeout
from .errors import DaemonUnavailable, LlmgateError, ProtocolError, \
    ReplyTimeout
from .types import Chunk, Lease, Result


class _Conn(ConnState["queue.SimpleQueue[Any]"]):
    """One connection: a reader thread hands each reply to the queue of
    its request id."""

    def __init__(self, path: str, name: str, timeout: float) -> None:
        super().__init__(path)
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except OSError as e:
                raise connect_error(path, e) from None
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
                                        % (LOST, e)) from None
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
            msgs = self.frames.messages()
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
                raise DaemonUnavailable(self.eof_reason())
            self.frames.feed(data)

    def _run(self) -> None:
        exc: LlmgateError
        try:
            while True:
                try:
                    data = self.sock.recv(262144)
                except socket.timeout:
                    continue
                if not data:
                    exc = DaemonUnavailable(self.eof_reason())
                    break
                self.frames.feed(data)
                for msg in self.frames.messages():
                    self._dispatch(msg)
        except LlmgateError as e:
            exc = e
        except OSError as e:
            exc = DaemonUnavailable("%s: %s" % (LOST, e))
        self._die(exc)

    def _dispatch(self, msg: Dict[str, Any]) -> None:
        with self.lock:
            q = self.route(msg)
        if q is not None:
            q.put(msg)

    def _die(self, exc: LlmgateError) -> None:
        with self.lock:
            if self.dead is None:
                self.dead = exc
            pend, self.pending = self.pending, {}
        for q in pend.values():
            q.put(Lost(self.dead))
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
            rid = self.new_id()
            self.pending[rid] = q
        try:
            frame = self.frame(msg, rid)
        except BaseException:
            self.forget(rid)
            raise
        self.send(frame, rid)
        return rid, q

    def send(self, frame: bytes, rid: int = 0) -> None:
        try:
            with self.send_lock:
                self.sock.sendall(frame)
        except OSError as e:
            self.forget(rid)
            exc = DaemonUnavailable("%s: %s" % (LOST, e))
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
    if isinstance(msg, Lost):
        raise msg.exc
    return msg  # type: ignore[no-any-return]


def _final(q: "queue.SimpleQueue[Any]",
           timeout: Optional[float]) -> Dict[str, Any]:
    """A call's final frame, past its chunks."""
    while True:
        msg = _wait(q, timeout, "a call")
        if msg["t"] != "chunk":
            return msg


class Stream(StreamBase):
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
        super().__init__(client, req, opts)
        self._conn = conn
        self._rid = rid
        self._q = q

    def __iter__(self) -> Iterator[Chunk]:
        if self._closed:
            raise closed_error()
        try:
            while not self._done:
                msg = _wait(self._q, self._timeout, "a streamed call")
                if msg["t"] == "chunk":
                    yield self._state.chunk(msg)
                    continue
                self._end(msg)
        finally:
            self.close()

    def _send_cancel(self, forget: bool) -> None:
        self._conn.cancel(self._rid, forget=forget)

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


class Client(ClientBase):
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
        super().__init__(socket, name=name, timeout=timeout,
                         connect_timeout=connect_timeout)
        self._lock = threading.Lock()
        self._conn: Optional[_Conn] = None

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
            retry = self._connect_retry()
            while True:
                try:
                    self._conn = _Conn(self.path, self.name,
                                       min(self.timeout, 30.0))
                    self._was_connected = True
                    return self._conn
                except DaemonUnavailable as e:
                    delay = retry.failed(e)
                time.sleep(delay)

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
        req, opts = _call.prepare(prompt, messages, options)
        c, rid, q = self._request(call_map(0, req))
        with cancelling(c, rid):
            msg = _final(q, stream_timeout(req, self.timeout))
        return _call.finish(msg, req, opts, self)

    def stream(self, prompt: Optional[str] = None, *,
               messages: Optional[List[Any]] = None,
               **options: Any) -> Stream:
        """Like call(), streamed: ``for chunk in client.stream(...)``.
        The Stream's ``result`` is set when the loop ends."""
        req, opts = _call.prepare(prompt, messages, options)
        c, rid, q = self._request(_call.stream_map(req))
        return Stream(self, c, rid, q, req, opts)

    def resume(self, result: Result, message: Any = None,
               **options: Any) -> Result:
        """Continue result's conversation with its reply, the outputs of
        result.execute_tools() and message (a new user turn); the other
        options are the original call's unless given."""
        return self.call(messages=result.conversation(message),
                         **_call.resume_options(result, options))

    def run_tools(self, prompt: Optional[str] = None, *,
                  messages: Optional[List[Any]] = None,
                  max_tool_errors: int = 3, max_rounds: int = 16,
                  **options: Any) -> Result:
        """Call, run the tools the model calls, send their outputs back,
        and repeat until the model answers without calling a tool. A tool
        that raises has its error fed back to the model; after
        ``max_tool_errors`` rounds in a row with a failing tool, that
        tool's exception is raised."""
        rounds = ToolRounds(max_tool_errors, max_rounds)
        res = self.call(prompt, messages=messages, **options)
        for _ in range(max_rounds):
            if not res.tool_calls:
                return res
            rounds.outputs(res.execute_tools())
            res = self.resume(res)
        return rounds.done(res)

    # -- small requests ----------------------------------------------------

    def _simple(self, msg: Dict[str, Any], want: str) -> Dict[str, Any]:
        c, rid, q = self._request(msg)
        try:
            reply = _wait(q, self.timeout, "'%s'" % msg["t"])
        except ReplyTimeout:
            c.forget(rid)
            raise
        return reply_of(msg, reply, want)

    def ping(self) -> float:
        """Round trip to the daemon, in seconds."""
        t0 = time.monotonic()
        self._simple({"t": "ping"}, "pong")
        return time.monotonic() - t0

    def status(self) -> Dict[str, Any]:
        """The daemon's live view (as ``llmgate status --json``): targets
        with their breakers, limits and cooldowns, the retry budget,
        counters, and the providers' base URLs."""
        return status_of(self._simple({"t": "status"}, "status"))

    def metrics(self) -> str:
        """The daemon's Prometheus metrics text."""
        return metrics_of(self._simple({"t": "metrics"}, "metrics"))

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
        with cancelling(c, rid):
            reply = _wait(q, self._acquire_wait(timeout), "acquire")
        return lease_of(reply, target)

    def report(self, lease: Lease, status: Optional[int] = None,
               retry_after: Optional[float] = None,
               input_tokens: Optional[int] = None,
               output_tokens: Optional[int] = None,
               usage: Any = None) -> None:
        """Tell the daemon how a leased request went (once per lease)."""
        self._simple(report_map(lease, status, retry_after, input_tokens,
                                output_tokens, usage), "ok")

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
            if lease_failed(lease, e):
                with contextlib.suppress(LlmgateError):
                    self.report(lease)
            raise
        if lease_ended(lease):
            self.report(lease)


__all__ = ["Client", "Stream"]
