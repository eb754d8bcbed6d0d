"""What the synchronous and the asyncio client share: everything but the
I/O. The connection's bookkeeping (request ids, replies to their request,
why it was lost), the handshake's messages, the connect retry rule, the
decoding of the small requests' replies and leases, and the tool loop's
rule."""
from __future__ import annotations

import contextlib
import errno
import time
from typing import Any, Dict, Generic, Iterator, Optional, TypeVar

from . import _call
from ._proto import FINAL, MAX_FRAME, VERSION, FrameReader, encode, \
    socket_path, text_of
from ._stream import StreamState, stream_timeout
from .errors import DaemonUnavailable, InvalidRequest, LlmgateError, \
    ProtocolError
from .types import Lease, Result

RETRYABLE_CONNECT = (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN)
LOST = "connection to llmgated lost"

P = TypeVar("P")


class Lost:
    """Put in a pending request's queue when the connection dies."""

    def __init__(self, exc: LlmgateError) -> None:
        self.exc = exc


def connect_error(path: str, e: OSError) -> DaemonUnavailable:
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


class ConnState(Generic[P]):
    """A connection's bookkeeping: its pending requests by id (each with
    whatever the client waits on, P), the frames read so far, and why it
    was lost. The synchronous client holds its lock around these."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pending: Dict[int, P] = {}
        self.next_id = 1
        self.dead: Optional[LlmgateError] = None
        self.notice: Optional[str] = None
        self.frames = FrameReader()
        self.server = ""
        self.max_frame = 0

    def new_id(self) -> int:
        """A request id no pending request has (they count up and wrap)."""
        while True:
            rid = self.next_id
            self.next_id = self.next_id % 0xFFFFFFFF + 1
            if rid not in self.pending:
                return rid

    def frame(self, msg: Dict[str, Any], rid: int) -> bytes:
        """msg as a frame under rid; InvalidRequest when it is over the
        daemon's max_frame."""
        msg["id"] = rid
        frame = encode(msg)
        if len(frame) - 4 > self.max_frame:
            raise InvalidRequest("request too large: %d bytes, llmgated "
                                 "takes at most %d" % (len(frame) - 4,
                                                       self.max_frame))
        return frame

    def route(self, msg: Dict[str, Any]) -> Optional[P]:
        """The pending request msg answers, taken off the table when msg is
        its last; None for none (a late frame) or an id-0 notice, which is
        kept to explain a loss that usually follows."""
        rid = msg["id"]
        if rid == 0:
            if msg["t"] == "error":
                self.notice = text_of(msg.get("message"))
            return None
        p = self.pending.get(rid)
        if p is not None and msg["t"] in FINAL:
            del self.pending[rid]
        return p

    def eof_reason(self) -> str:
        if self.notice:
            return "%s: %s" % (LOST, self.notice)
        if self.frames.pending():
            return "%s: llmgated closed the connection in the middle of a " \
                   "frame" % LOST
        return "%s: llmgated closed the connection" % LOST


@contextlib.contextmanager
def cancelling(conn: Any, rid: int) -> Iterator[None]:
    """A wait for request rid's answer: when it fails (it timed out, was
    interrupted or its task cancelled, the connection was lost), the
    daemon is told to stop the request there."""
    try:
        yield
    except BaseException:
        conn.cancel(rid)
        raise


class ClientBase:
    """The settings both clients take, and their connect retry rule."""

    def __init__(self, socket: Optional[str] = None, *,
                 name: str = "llmgate-python", timeout: float = 300.0,
                 connect_timeout: float = 5.0) -> None:
        self.path = socket_path(socket)
        self.name = name
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._was_connected = False
        self._closed = False

    def _connect_retry(self) -> "ConnectRetry":
        """After a loss the daemon may be restarting: retry a while."""
        return ConnectRetry(self.connect_timeout if self._was_connected
                            else 0)

    def _acquire_wait(self, timeout: Optional[float]) -> float:
        """How long to wait for an acquire's answer: the daemon answers by
        the acquire's own timeout."""
        return max(self.timeout, (timeout or 0) + 10)


class ConnectRetry:
    """How a client retries connecting: for up to limit seconds, with
    growing pauses, while the failure is one that waiting may cure."""

    def __init__(self, limit: float) -> None:
        self.deadline = time.monotonic() + limit
        self.delay = 0.01

    def failed(self, e: DaemonUnavailable) -> float:
        """A connect failed with e: raise it if that is final, else how
        long to pause before the next try."""
        cause = e.__cause__ or e.__context__
        if time.monotonic() >= self.deadline or (
                isinstance(cause, OSError) and
                cause.errno not in RETRYABLE_CONNECT):
            raise e
        delay, self.delay = self.delay, min(self.delay * 2, 0.2)
        return delay


class StreamBase:
    """A streamed call's state, whatever drives it."""

    def __init__(self, client: ClientBase, req: Dict[str, Any],
                 opts: Dict[str, Any]) -> None:
        self._client = client
        self._req = req
        self._opts = opts
        self._rid = 0
        self._state = StreamState()
        self._done = False
        self._closed = False        # close()d: iterating raises Cancelled
        self._cancelled = False     # cancel()led: the answer still comes
        self._timeout = stream_timeout(req, client.timeout)
        self.result: Optional[Result] = None

    @property
    def text(self) -> str:
        """The text streamed so far."""
        return self._state.text

    def _send_cancel(self, forget: bool) -> None:
        """Ask the daemon to cancel the call, if it went out; with forget,
        nothing waits for its answer."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Cancel the call in the daemon if it has not ended; the loop
        iterating this stream (now or next) raises llmgate.Cancelled, or
        ends normally if the result was already on its way."""
        if not self._done and not self._cancelled:
            self._cancelled = True
            self._send_cancel(False)

    def close(self) -> None:
        """Cancel the call if it has not ended; nothing waits for its
        answer (iterating the stream again raises llmgate.Cancelled)."""
        if not self._done:
            self._done = True
            self._closed = True
            self._send_cancel(True)

    def _end(self, msg: Dict[str, Any]) -> None:
        """The stream's final frame: its Result, or raise its CallError."""
        self._done = True
        # A streamed result leaves out the text its chunks carried.
        if msg.get("streamed") is True and msg.get("text") is None:
            msg["text"] = self._state.text
        self.result = _call.finish(msg, self._req, self._opts, self._client)


def reply_of(msg: Dict[str, Any], reply: Dict[str, Any],
             want: str) -> Dict[str, Any]:
    """A small request's reply if it is the one wanted; else raise the
    daemon's error or a ProtocolError."""
    if reply["t"] == "error":
        raise _call.lease_error(reply)
    if reply["t"] != want:
        raise ProtocolError("llmgated answered '%s' with '%s'"
                            % (msg["t"], reply["t"]))
    return reply


def status_of(reply: Dict[str, Any]) -> Dict[str, Any]:
    body = reply.get("body")
    return body if isinstance(body, dict) else {}


def metrics_of(reply: Dict[str, Any]) -> str:
    return text_of(reply.get("text")) or ""


def lease_of(reply: Dict[str, Any], target: str) -> Lease:
    """An acquire's answer as a Lease, or raise why not."""
    if reply["t"] == "error":
        raise _call.lease_error(reply)
    lid = reply.get("lease")
    if reply["t"] != "lease" or not isinstance(lid, int):
        raise ProtocolError("llmgated answered acquire with '%s'"
                            % reply["t"])
    ttl = reply.get("ttl_ms")
    return Lease(id=lid, target=text_of(reply.get("target")) or target,
                 ttl_ms=ttl if isinstance(ttl, int) else 0)


def report_map(lease: Lease, status: Optional[int],
               retry_after: Optional[float], input_tokens: Optional[int],
               output_tokens: Optional[int], usage: Any) -> Dict[str, Any]:
    """The report of a lease (once per lease)."""
    lease.report(status, retry_after, input_tokens, output_tokens, usage)
    if lease.reported:
        raise ValueError("lease %d was already reported" % lease.id)
    lease.reported = True
    return _call.report_map(0, lease)


def lease_failed(lease: Lease, e: BaseException) -> bool:
    """The leased block raised e: fill in what it says of the provider;
    True when the lease is still to be reported."""
    if lease.reported:
        return False
    if lease.status is None:
        status, retry = _call.exception_outcome(e)
        # The caller's own error says nothing of the provider.
        if status == 0 and not _is_transport_error(e):
            status = 200
        lease.status = status
        if lease.retry_after is None:
            lease.retry_after = retry
    return True


def lease_ended(lease: Lease) -> bool:
    """The leased block ended: True when the lease is still to be reported
    (as a success unless the block said otherwise)."""
    if lease.reported:
        return False
    if lease.status is None:
        lease.status = 200
    return True


def _is_transport_error(e: BaseException) -> bool:
    if isinstance(e, (OSError, TimeoutError)):
        return True
    names = [k.__name__ for k in type(e).__mro__]
    return any(n in ("TransportError", "APIConnectionError", "APITimeoutError")
               or "Connection" in n or "Timeout" in n for n in names)


class ToolRounds:
    """run_tools()'s rule: at most max_rounds rounds; a tool error is fed
    back to the model, but max_tool_errors rounds in a row with one raise
    it."""

    def __init__(self, max_tool_errors: int, max_rounds: int) -> None:
        self.max_tool_errors = max_tool_errors
        self.max_rounds = max_rounds
        self.errors = 0

    def outputs(self, outs: Any) -> None:
        """A round's tool outputs: raise the first error if too many rounds
        in a row failed."""
        failed = [o.error for o in outs if o.error is not None]
        if failed:
            self.errors += 1
            if self.errors >= self.max_tool_errors:
                raise failed[0]
        else:
            self.errors = 0

    def done(self, res: Result) -> Result:
        """The result after the last round."""
        if res.tool_calls:
            raise LlmgateError("the model still calls tools after %d "
                               "rounds" % self.max_rounds)
        return res
