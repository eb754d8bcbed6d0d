"""What a call returns: results, attempts, usage, tool calls, chunks, leases."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ._proto import text_of

if TYPE_CHECKING:  # pragma: no cover
    from .tools import ToolOutput


@dataclass
class Attempt:
    """One upstream attempt, or a target skipped without one.

    ``cls`` is the error class the attempt ended with (``"ok"`` for the one
    that answered); ``attempt["class"]`` reads it too.
    """

    target: str
    cls: str
    status: Optional[int] = None
    message: Optional[str] = None
    ms: int = 0
    waited_ms: int = 0
    skipped: bool = False

    def __getitem__(self, key: str) -> Any:
        return getattr(self, "cls" if key == "class" else key)


@dataclass
class Usage:
    """Tokens, as the provider counted them: the answering attempt's
    (``Result.usage``), or the whole call's (``Result.usage_total``)."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class ToolCall:
    """A tool call in a reply. ``arguments`` is the JSON text; ``args`` is
    it parsed."""

    id: str
    name: str
    arguments: str = "{}"

    @property
    def args(self) -> Any:
        return json.loads(self.arguments or "{}")


@dataclass
class Chunk:
    """A streamed piece of a reply.

    ``text``: text to append. ``reset``: throw away what was shown so far
    first (``on_cut="restart"`` started over). A tool-call delta has
    ``tool_index`` >= 0 and pieces of ``tool_id``, ``tool_name`` and
    ``tool_args`` (arguments JSON text, to be concatenated).
    """

    text: str = ""
    reset: bool = False
    tool_index: int = -1
    tool_id: Optional[str] = None
    tool_name: Optional[str] = None
    tool_args: Optional[str] = None


@dataclass
class Result:
    """The answer to a successful call.

    ``text``, ``tool_calls``, ``usage`` (the answering reply's),
    ``usage_total`` (what the whole call was billed: every attempt, repair
    and resumed part), ``finish_reason`` (``"stop"``,
    ``"length"``, ``"tool_calls"``, ``"content_filter"``, ``"other"`` or
    None), ``stop_sequence`` (the stop sequence that ended the reply, when
    the provider said which: Anthropic does; else None), ``target`` (the ``provider/model`` that answered), ``attempts``
    (every attempt in order), ``parsed`` (the reply parsed against the
    call's ``schema``: a dict, or the pydantic model's instance).
    """

    text: str = ""
    tool_calls: List[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    usage_total: Usage = field(default_factory=Usage)
    finish_reason: Optional[str] = None
    stop_sequence: Optional[str] = None
    target: Optional[str] = None
    attempts: List[Attempt] = field(default_factory=list)
    parsed: Any = None
    messages: List[Dict[str, Any]] = field(default_factory=list, repr=False)
    tool_outputs: "List[ToolOutput]" = field(default_factory=list, repr=False)
    _client: Any = field(default=None, repr=False, compare=False)
    _options: Dict[str, Any] = field(default_factory=dict, repr=False,
                                     compare=False)

    def assistant_message(self) -> Dict[str, Any]:
        """This reply as an assistant turn of a conversation."""
        m: Dict[str, Any] = {"role": "assistant"}
        if self.text:
            m["content"] = self.text
        if self.tool_calls:
            m["tool_calls"] = [{"id": c.id, "name": c.name,
                                "arguments": c.arguments}
                               for c in self.tool_calls]
        return m

    def conversation(self, message: Any = None) -> List[Dict[str, Any]]:
        """The messages of this call, this reply, the outputs of
        execute_tools() and then ``message`` (a str for a user turn, a
        message dict, or None)."""
        msgs = list(self.messages) + [self.assistant_message()]
        for out in self.tool_outputs:
            msgs.append(out.message())
        if isinstance(message, str):
            msgs.append({"role": "user", "content": message})
        elif isinstance(message, dict):
            msgs.append(message)
        elif message is not None:
            msgs.extend(message)
        return msgs

    def resume(self, message: Any = None, **options: Any) -> Any:
        """Continue the conversation: this call's messages, this reply, the
        outputs of execute_tools() if it ran, then ``message`` as a new user
        turn. Same options as the original call unless overridden. With
        an AsyncClient this returns a coroutine."""
        if self._client is None:
            raise ValueError("this result has no client to resume with")
        return self._client.resume(self, message, **options)

    def execute_tools(self, tools: Any = None) -> "List[ToolOutput]":
        """Run this reply's tool calls with the call's ``@llmgate.tool``
        functions (or ``tools``). An exception a tool raises becomes that
        tool's error output instead of propagating; the outputs go back to
        the model on resume(). Returns them (also in ``tool_outputs``)."""
        from .tools import execute
        self.tool_outputs = execute(self.tool_calls,
                                    tools if tools is not None
                                    else self._options.get("tools"))
        return self.tool_outputs


@dataclass
class Lease:
    """An advisory lease: the daemon admitted one request to ``target``.

    Use it as ``with client.lease(...) as lease:``; call
    ``lease.report(...)`` with what the provider answered, or let the block
    end (a clean exit reports success, an exception its status or class).
    """

    id: int
    target: str
    ttl_ms: int = 0
    status: Optional[int] = None
    retry_after: Optional[float] = None
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    reported: bool = False

    def report(self, status: Optional[int] = None,
               retry_after: Optional[float] = None,
               input_tokens: Optional[int] = None,
               output_tokens: Optional[int] = None,
               usage: Any = None) -> None:
        """Record the outcome; it is sent when the ``with`` block ends.
        ``usage`` may be a Usage, an OpenAI-style usage object or dict
        (``prompt_tokens``/``completion_tokens``) or an Anthropic one
        (``input_tokens``/``output_tokens``)."""
        if status is not None:
            self.status = status
        if retry_after is not None:
            self.retry_after = retry_after
        if usage is not None:
            i, o = usage_counts(usage)
            input_tokens = i if input_tokens is None else input_tokens
            output_tokens = o if output_tokens is None else output_tokens
        if input_tokens is not None:
            self.input_tokens = input_tokens
        if output_tokens is not None:
            self.output_tokens = output_tokens


def usage_counts(usage: Any) -> "tuple[Optional[int], Optional[int]]":
    def get(name: str) -> Optional[int]:
        v = usage.get(name) if isinstance(usage, dict) else \
            getattr(usage, name, None)
        return v if isinstance(v, int) else None
    i = get("input_tokens")
    o = get("output_tokens")
    if i is None:
        i = get("prompt_tokens")
    if o is None:
        o = get("completion_tokens")
    return i, o


def _int(v: Any, default: int = 0) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def attempts_of(msg: Dict[str, Any]) -> List[Attempt]:
    out = []
    for a in msg.get("attempts") or []:
        if not isinstance(a, dict):
            continue
        st = a.get("status")
        out.append(Attempt(target=text_of(a.get("target")) or "",
                           cls=text_of(a.get("class")) or "ok",
                           status=st if isinstance(st, int) and st else None,
                           message=text_of(a.get("message")),
                           ms=_int(a.get("ms")),
                           waited_ms=_int(a.get("waited_ms")),
                           skipped=a.get("skipped") is True))
    return out


def result_of(msg: Dict[str, Any]) -> Result:
    u = msg.get("usage")
    usage: Dict[str, Any] = u if isinstance(u, dict) else {}
    u = msg.get("usage_total")
    total: Dict[str, Any] = u if isinstance(u, dict) else {}
    calls = []
    for c in msg.get("tool_calls") or []:
        if isinstance(c, dict):
            calls.append(ToolCall(id=text_of(c.get("id")) or "",
                                  name=text_of(c.get("name")) or "",
                                  arguments=text_of(c.get("arguments"))
                                  or "{}"))
    return Result(text=text_of(msg.get("text")) or "",
                  tool_calls=calls,
                  usage=Usage(_int(usage.get("input_tokens")),
                              _int(usage.get("output_tokens"))),
                  usage_total=Usage(_int(total.get("input_tokens")),
                                    _int(total.get("output_tokens"))),
                  finish_reason=text_of(msg.get("finish_reason")),
                  stop_sequence=text_of(msg.get("stop_sequence")),
                  target=text_of(msg.get("target")),
                  attempts=attempts_of(msg))


def chunk_of(msg: Dict[str, Any]) -> Chunk:
    c = Chunk(reset=msg.get("reset") is True)
    tool = msg.get("tool")
    if isinstance(tool, dict):
        c.tool_index = _int(tool.get("index"))
        c.tool_id = text_of(tool.get("id"))
        c.tool_name = text_of(tool.get("name"))
        c.tool_args = text_of(tool.get("args"))
    return c
