"""The llmgate wire protocol (proto/PROTOCOL.md): frames, socket path, codec.

A frame is a 4-byte big-endian payload length followed by one msgpack map
holding ``t`` (the message type), ``id`` (the request id) and the type's
fields. This module has no I/O of its own: the sync and asyncio clients
feed it bytes and send what it encodes.
"""
from __future__ import annotations

import os
import struct
from typing import Any, Dict, List, Optional, Tuple

import msgpack

from .errors import ProtocolError

VERSION = 1
HDR = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024
DEFAULT_SOCKET = "/run/llmgate/llmgate.sock"

CLASSES = (
    "ok", "rate_limited", "overloaded", "server_error", "timeout",
    "connection", "parse_error", "quota_exhausted", "auth", "permission",
    "not_found", "context_length", "content_filter", "bad_request", "schema",
    "circuit_open", "budget_exhausted", "deadline", "cancelled",
    "invalid_request", "internal",
)
FINISH = ("stop", "length", "tool_calls", "content_filter", "other")
PRIORITIES = ("high", "normal", "low")
ON_CUT = ("resume", "restart", "fail")

# The last reply of each request type: once it arrives the id is free.
FINAL = frozenset(("result", "error", "pong", "status", "metrics", "lease",
                   "ok"))


def socket_path(explicit: Optional[str] = None) -> str:
    """The daemon's socket, resolved as libllmgate does (proto/socket.c).

    The explicit path if given, else ``$LLMGATE_SOCKET``, else
    ``/run/llmgate/llmgate.sock``. The daemon's config file is not read.
    """
    if explicit:
        return os.fspath(explicit)
    env = os.environ.get("LLMGATE_SOCKET")
    if env:
        return env
    return DEFAULT_SOCKET


def encode(msg: Dict[str, Any]) -> bytes:
    """One frame, header included."""
    payload: bytes = msgpack.packb(msg, use_bin_type=True)
    return HDR.pack(len(payload)) + payload


class FrameReader:
    """Splits a byte stream into decoded messages.

    feed() takes whatever the socket gave; messages() yields each complete
    frame's map. A frame that is empty, too large or not one msgpack map
    with a string ``t`` and an integer ``id`` raises ProtocolError: the
    stream cannot be trusted after it.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> None:
        self.buf += data

    def pending(self) -> int:
        """Bytes of an incomplete frame held (0 between frames)."""
        return len(self.buf)

    def messages(self) -> List[Dict[str, Any]]:
        out = []
        buf = self.buf
        off = 0
        while len(buf) - off >= 4:
            (n,) = HDR.unpack_from(buf, off)
            if n == 0 or n > self.max_frame:
                raise ProtocolError(
                    "llmgated sent a frame header announcing %d bytes "
                    "(1 to %d allowed)" % (n, self.max_frame))
            if len(buf) - off - 4 < n:
                break
            out.append(decode(bytes(buf[off + 4:off + 4 + n])))
            off += 4 + n
        if off:
            del buf[:off]
        return out


def decode(payload: bytes) -> Dict[str, Any]:
    """One payload (without its header) to a dict, checked."""
    try:
        msg = msgpack.unpackb(payload, raw=False, strict_map_key=True,
                              unicode_errors="surrogateescape")
    except Exception as e:  # msgpack raises several unrelated types
        raise ProtocolError("llmgated sent a frame that does not decode: "
                            "%s" % (e,)) from None
    if not isinstance(msg, dict):
        raise ProtocolError("llmgated sent a frame that is not a map")
    t, mid = msg.get("t"), msg.get("id")
    if not isinstance(t, str) or not isinstance(mid, int) or \
            isinstance(mid, bool) or mid < 0 or mid > 0xFFFFFFFF:
        raise ProtocolError("llmgated sent a frame without a valid 't' "
                            "and 'id'")
    return msg


def text_of(v: Any) -> Optional[str]:
    """A str field, or a bin one decoded as UTF-8."""
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, str):
        return v
    raise ProtocolError("llmgated sent a field of type %s where text was "
                        "expected" % type(v).__name__)


def call_map(rid: int, req: Dict[str, Any]) -> Dict[str, Any]:
    m = {"t": "call", "id": rid}
    m.update(req)
    return m


def split_target(target: str) -> Tuple[str, str]:
    provider, _, model = target.partition("/")
    return provider, model
