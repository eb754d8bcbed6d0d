"""Shared state of a streamed call: text and tool-call deltas."""
from __future__ import annotations

import codecs
from typing import Any, Dict, List, Optional

from .errors import Cancelled
from .types import Chunk, ToolCall, chunk_of


def closed_error() -> Cancelled:
    """What iterating a stream raises once its client closed it (break,
    close(), the end of a with block) before the call ended."""
    return Cancelled("the stream was closed before the call ended")


class StreamState:
    """Accumulates a stream's chunks. Chunk text may arrive as bytes (or a
    str with undecodable bytes escaped), and a UTF-8 sequence may be split
    between chunks, so it goes through an incremental decoder."""

    def __init__(self) -> None:
        self.text = ""
        self.tools: Dict[int, Dict[str, str]] = {}
        self._dec = codecs.getincrementaldecoder("utf-8")("replace")

    def chunk(self, msg: Dict[str, Any]) -> Chunk:
        c = chunk_of(msg)
        if c.reset:
            self.text = ""
            self.tools = {}
            self._dec.reset()
        raw = msg.get("text")
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if isinstance(raw, (bytes, bytearray)) and raw:
            c.text = self._dec.decode(bytes(raw))
            self.text += c.text
        if c.tool_index >= 0:
            t = self.tools.setdefault(c.tool_index,
                                      {"id": "", "name": "", "args": ""})
            t["id"] += c.tool_id or ""
            t["name"] += c.tool_name or ""
            t["args"] += c.tool_args or ""
        return c

    def tool_calls(self) -> List[ToolCall]:
        return [ToolCall(t["id"], t["name"], t["args"] or "{}")
                for _, t in sorted(self.tools.items())]


def stream_timeout(req: Dict[str, Any], default: Optional[float]) -> \
        Optional[float]:
    """How long to wait for any one frame of a call: the client's timeout,
    or longer when the call's own deadline is longer (the daemon answers
    by then)."""
    t = req.get("timeout_ms")
    if default is None:
        return None
    if isinstance(t, int) and t:
        return max(default, t / 1000 + 10)
    return default
