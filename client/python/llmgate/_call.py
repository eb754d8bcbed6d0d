"""Turning call() arguments into a wire request and answers into results."""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Tuple

from ._proto import ON_CUT, PRIORITIES, call_map, text_of
from .errors import CallError, error_for
from .tools import Tool, as_wire_tool, is_pydantic_model, model_parse, \
    model_schema
from .types import Result, attempts_of, result_of

# Everything call() takes besides prompt/messages; resume() reuses them.
OPTIONS = ("models", "route", "system", "tools", "schema", "max_tokens",
           "temperature", "top_p", "seed", "stop", "priority", "timeout",
           "attempts", "on_cut", "fallback_on", "reject", "tool_choice")


def _message(m: Any) -> Dict[str, Any]:
    if not isinstance(m, dict):
        raise TypeError("a message is a dict with 'role' and 'content'")
    out: Dict[str, Any] = {"role": m.get("role", "user")}
    if out["role"] not in ("user", "assistant", "tool"):
        raise ValueError("message role must be user, assistant or tool, "
                         "not %r (give the system prompt as system=)"
                         % (out["role"],))
    for k in ("content", "tool_call_id", "name"):
        if m.get(k) is not None:
            out[k] = str(m[k])
    if m.get("tool_calls"):
        calls = []
        for c in m["tool_calls"]:
            if not isinstance(c, dict):
                c = {"id": c.id, "name": c.name, "arguments": c.arguments}
            a = c.get("arguments", "{}")
            calls.append({"id": c["id"], "name": c["name"],
                          "arguments": a if isinstance(a, str)
                          else json.dumps(a)})
        out["tool_calls"] = calls
    return out


def _u32(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not \
            0 <= v <= 0xFFFFFFFF:
        raise ValueError("%s must be an integer from 0 to 4294967295" % name)
    return v


def _ms(name: str, seconds: Any) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not math.isfinite(seconds) or seconds < 0:
        raise ValueError("%s must be a number of seconds >= 0" % name)
    return _u32(name, int(math.ceil(seconds * 1000)))


def build(prompt: Optional[str], messages: Optional[List[Any]],
          opts: Dict[str, Any]) -> Dict[str, Any]:
    """The call's fields on the wire (without t/id/stream)."""
    if (prompt is None) == (messages is None):
        raise TypeError("give prompt= or messages=, not both")
    msgs = [{"role": "user", "content": str(prompt)}] if prompt is not None \
        else [_message(m) for m in messages or []]
    if not msgs:
        raise ValueError("messages must not be empty")
    req: Dict[str, Any] = {"messages": msgs}
    models = opts.get("models")
    if isinstance(models, str):
        models = [models]
    if models:
        req["targets"] = [str(t) for t in models]
    if opts.get("route") is not None:
        req["route"] = str(opts["route"])
    if opts.get("system") is not None:
        req["system"] = str(opts["system"])
    if opts.get("tools"):
        req["tools"] = [as_wire_tool(t) for t in opts["tools"]]
    schema = opts.get("schema")
    if schema is not None:
        if is_pydantic_model(schema):
            schema = model_schema(schema)
        req["schema"] = schema if isinstance(schema, str) \
            else json.dumps(schema)
    if opts.get("max_tokens") is not None:
        req["max_tokens"] = _u32("max_tokens", opts["max_tokens"])
    for k in ("temperature", "top_p"):
        v = opts.get(k)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                    not math.isfinite(v):
                raise ValueError("%s must be a finite number" % k)
            req[k] = float(v)
    if opts.get("seed") is not None:
        req["seed"] = int(opts["seed"])
    if opts.get("stop"):
        stop = opts["stop"]
        req["stop"] = [stop] if isinstance(stop, str) else [str(s) for s in
                                                             stop]
    if opts.get("attempts") is not None:
        req["attempts"] = _u32("attempts", opts["attempts"])
    if opts.get("timeout") is not None:
        req["timeout_ms"] = _ms("timeout", opts["timeout"])
    if opts.get("priority") is not None:
        if opts["priority"] not in PRIORITIES:
            raise ValueError("priority must be one of %s" % (PRIORITIES,))
        req["priority"] = opts["priority"]
    if opts.get("on_cut") is not None:
        if opts["on_cut"] not in ON_CUT:
            raise ValueError("on_cut must be one of %s" % (ON_CUT,))
        req["on_cut"] = opts["on_cut"]
    tc = opts.get("tool_choice")
    if tc is not None:
        # "auto", "none", "required", or a tool: its name (a str with
        # required=... is ambiguous), {"name": ...}, or a @tool function.
        if isinstance(tc, str) and tc in ("auto", "none", "required"):
            if tc != "auto":
                req["tool_choice"] = tc
        else:
            name = tc.get("name") if isinstance(tc, dict) else \
                getattr(tc, "name", None) if isinstance(tc, Tool) else \
                getattr(tc, "__name__", None)
            if not isinstance(name, str) or not name:
                raise ValueError("tool_choice must be 'auto', 'none', "
                                 "'required', {'name': TOOL} or a tool")
            req["tool_choice"] = "required"
            req["tool_name"] = name
    # Class names and reply conditions; the daemon checks them.
    for k in ("fallback_on", "reject"):
        v = opts.get(k)
        if v:
            req[k] = [v] if isinstance(v, str) else [str(x) for x in v]
    return req


def finish(msg: Dict[str, Any], req: Dict[str, Any], opts: Dict[str, Any],
           client: Any) -> Result:
    """The final frame of a call: a Result, or raise its CallError."""
    if msg["t"] == "error":
        cls = text_of(msg.get("class")) or "internal"
        if cls == "ok":
            cls = "internal"
        partial = msg.get("partial") is True
        res = result_of(msg)
        raise error_for(cls, text_of(msg.get("message")) or cls,
                        attempts_of(msg), partial=partial, text=res.text,
                        result=res)
    res = result_of(msg)
    res.messages = req["messages"]
    res._client = client
    res._options = opts
    schema = opts.get("schema")
    if schema is not None:
        try:
            res.parsed = model_parse(schema, res.text) \
                if is_pydantic_model(schema) else json.loads(res.text)
        except Exception as e:
            raise error_for("schema", "the reply does not parse: %s" % e,
                            res.attempts, text=res.text, result=res) from e
    return res


def split(kwargs: Dict[str, Any]) -> Tuple[Optional[str],
                                            Optional[List[Any]],
                                            Dict[str, Any]]:
    prompt = kwargs.pop("prompt", None)
    messages = kwargs.pop("messages", None)
    bad = set(kwargs) - set(OPTIONS)
    if bad:
        raise TypeError("unknown call option(s): %s" % ", ".join(sorted(bad)))
    return prompt, messages, kwargs


def prepare(prompt: Optional[str], messages: Optional[List[Any]],
            options: Dict[str, Any]) -> Tuple[Dict[str, Any],
                                              Dict[str, Any]]:
    """call()'s arguments as the wire request and the options the Result
    keeps (resume() reuses them)."""
    prompt, messages, opts = split(
        dict(options, prompt=prompt, messages=messages))
    return build(prompt, messages, opts), opts


def stream_map(req: Dict[str, Any]) -> Dict[str, Any]:
    """A streamed call's frame (its id set when it is sent)."""
    m = call_map(0, req)
    m["stream"] = True
    return m


def resume_options(result: Result, options: Dict[str, Any]) -> \
        Dict[str, Any]:
    """resume()'s options: the original call's, unless given."""
    opts = dict(result._options)
    opts.update(options)
    return opts


def lease_error(msg: Dict[str, Any]) -> CallError:
    cls = text_of(msg.get("class")) or "internal"
    return error_for(cls, text_of(msg.get("message")) or cls,
                     attempts_of(msg))


def report_map(rid: int, lease: Any) -> Dict[str, Any]:
    m: Dict[str, Any] = {"t": "report", "id": rid, "lease": int(lease.id)}
    if lease.status:
        m["status"] = _u32("status", lease.status)
    if lease.retry_after is not None and lease.retry_after >= 0:
        m["retry_after_s"] = float(lease.retry_after)
    if lease.input_tokens:
        m["input_tokens"] = int(lease.input_tokens)
    if lease.output_tokens:
        m["output_tokens"] = int(lease.output_tokens)
    return m


def acquire_map(rid: int, target: str, tokens: int, timeout: Optional[float],
                priority: Optional[str]) -> Dict[str, Any]:
    m: Dict[str, Any] = {"t": "acquire", "id": rid, "target": str(target)}
    if tokens:
        m["tokens"] = _u32("tokens", tokens)
    if timeout is not None:
        m["timeout_ms"] = _ms("timeout", timeout)
    if priority is not None:
        if priority not in PRIORITIES:
            raise ValueError("priority must be one of %s" % (PRIORITIES,))
        m["priority"] = priority
    return m


def exception_outcome(exc: BaseException) -> Tuple[int, Optional[float]]:
    """The HTTP status and Retry-After an SDK's exception carries (openai,
    anthropic, httpx), else 0 (counted as a connection failure)."""
    resp = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        status = getattr(resp, "status_code", None)
    retry = None
    headers = getattr(resp, "headers", None)
    if headers is not None:
        retry = retry_after(headers)
    return (status if isinstance(status, int) else 0), retry


def retry_after(headers: Any) -> Optional[float]:
    """Seconds from retry-after-ms or Retry-After (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    v = headers.get("retry-after")
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    try:
        import email.utils
        import time
        when: float = email.utils.parsedate_to_datetime(v).timestamp()
        return max(0.0, when - time.time())
    except (TypeError, ValueError):
        return None
