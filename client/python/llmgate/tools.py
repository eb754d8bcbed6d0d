"""Tools executed in Python: ``@llmgate.tool`` and running a reply's calls."""
from __future__ import annotations

import enum
import inspect
import json
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union

from .types import ToolCall


def is_pydantic_model(obj: Any) -> bool:
    """A pydantic model class (v1 or v2), without importing pydantic."""
    return inspect.isclass(obj) and any(
        k.__module__.startswith("pydantic") and k.__name__ == "BaseModel"
        for k in obj.__mro__)


def model_schema(model: Any) -> Dict[str, Any]:
    """A pydantic model's JSON Schema (v2 or v1 API)."""
    if hasattr(model, "model_json_schema"):
        return model.model_json_schema()  # type: ignore[no-any-return]
    return json.loads(model.schema_json())  # type: ignore[no-any-return]


def model_parse(model: Any, text: str) -> Any:
    """text (JSON) validated into a pydantic model instance."""
    if hasattr(model, "model_validate_json"):
        return model.model_validate_json(text)
    return model.parse_raw(text)


def type_schema(tp: Any) -> Dict[str, Any]:
    """A JSON Schema for a Python type hint."""
    if tp is inspect.Parameter.empty or tp is Any:
        return {}
    if is_pydantic_model(tp):
        return model_schema(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return type_schema(rest[0])
        return {"anyOf": [type_schema(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, List, tuple, set, frozenset) or tp in (list, tuple,
                                                               set):
        s: Dict[str, Any] = {"type": "array"}
        if args and args[0] is not Ellipsis:
            s["items"] = type_schema(args[0])
        return s
    if origin in (dict, Dict) or tp is dict:
        s = {"type": "object"}
        if len(args) == 2:
            s["additionalProperties"] = type_schema(args[1])
        return s
    if inspect.isclass(tp) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    simple = {str: "string", int: "integer", float: "number",
              bool: "boolean", type(None): "null"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError("no JSON Schema for type %r; use a pydantic model or "
                    "give parameters=" % (tp,))


class Tool:
    """A Python function the model may call.

    ``name``, ``description`` (the docstring's first paragraph) and
    ``parameters`` (a JSON Schema object built from the type hints, or
    from a pydantic model when the function takes one parameter of such a
    type, or given explicitly). Calling the Tool calls the function.
    """

    def __init__(self, fn: Callable[..., Any], name: Optional[str] = None,
                 description: Optional[str] = None,
                 parameters: Optional[Dict[str, Any]] = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        doc = inspect.getdoc(fn) or ""
        self.description = description if description is not None else \
            doc.split("\n\n")[0].strip()
        self.model: Any = None
        self.model_arg: Optional[str] = None
        if parameters is None:
            parameters = self._schema()
        self.parameters = parameters

    def _schema(self) -> Dict[str, Any]:
        sig = inspect.signature(self.fn)
        hints = typing.get_type_hints(self.fn)
        params = [p for p in sig.parameters.values()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if len(params) == 1 and is_pydantic_model(hints.get(params[0].name)):
            self.model = hints[params[0].name]
            self.model_arg = params[0].name
            return model_schema(self.model)
        props: Dict[str, Any] = {}
        required = []
        for p in params:
            props[p.name] = type_schema(hints.get(p.name, p.empty))
            if p.default is p.empty:
                required.append(p.name)
            elif _jsonable(p.default):
                props[p.name].setdefault("default", p.default)
        s: Dict[str, Any] = {"type": "object", "properties": props}
        if required:
            s["required"] = required
        return s

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def invoke(self, arguments: Any) -> Any:
        """Call with a tool call's parsed arguments."""
        if self.model is not None:
            if hasattr(self.model, "model_validate"):
                obj = self.model.model_validate(arguments)
            else:
                obj = self.model.parse_obj(arguments)
            return self.fn(**{str(self.model_arg): obj})
        if not isinstance(arguments, dict):
            raise TypeError("tool arguments must be a JSON object")
        return self.fn(**arguments)

    def wire(self) -> Dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "parameters": json.dumps(self.parameters)}


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def tool(fn: Optional[Callable[..., Any]] = None, *, name: Optional[str] = None,
         description: Optional[str] = None,
         parameters: Optional[Dict[str, Any]] = None) -> Any:
    """Decorator: turn a function into a Tool for ``call(tools=[...])``.

    ``@llmgate.tool`` or ``@llmgate.tool(name=..., description=...)``. The
    JSON Schema of its arguments comes from the type hints (str, int, float,
    bool, lists, dicts, Optional, Literal, enums, pydantic models).
    """
    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description,
                    parameters=parameters)
    return wrap(fn) if fn is not None else wrap


@dataclass
class ToolOutput:
    """What running one tool call gave: ``output`` (text sent back to the
    model) and ``error`` (the exception the tool raised, or None)."""

    call: ToolCall
    output: str
    error: Optional[BaseException] = None

    def message(self) -> Dict[str, Any]:
        return {"role": "tool", "tool_call_id": self.call.id,
                "name": self.call.name, "content": self.output}


def as_wire_tool(t: Any) -> Dict[str, Any]:
    if isinstance(t, Tool):
        return t.wire()
    if callable(t):
        return Tool(t).wire()
    if isinstance(t, dict):
        p = t.get("parameters", {"type": "object"})
        return {"name": t["name"], "description": t.get("description", ""),
                "parameters": p if isinstance(p, str) else json.dumps(p)}
    raise TypeError("a tool is a @llmgate.tool function or a dict with "
                    "name, description and parameters")


def _by_name(tools: Any) -> Dict[str, Tool]:
    by_name = {}
    for t in tools or []:
        if isinstance(t, Tool):
            by_name[t.name] = t
        elif callable(t) and not isinstance(t, dict):
            by_name[t.__name__] = Tool(t)
    return by_name


def _invoke(by_name: Dict[str, Tool], c: ToolCall) -> Any:
    t = by_name.get(c.name)
    if t is None:
        raise LookupError("no Python function for tool '%s'" % c.name)
    return t.invoke(c.args)


def _output(c: ToolCall, value: Any) -> ToolOutput:
    return ToolOutput(c, value if isinstance(value, str)
                      else json.dumps(value, default=_default))


def _failed(c: ToolCall, e: Exception) -> ToolOutput:
    return ToolOutput(c, "error: %s: %s" % (type(e).__name__, e), e)


def execute(calls: List[ToolCall], tools: Any) -> List[ToolOutput]:
    """Run each call with the matching Tool; errors become outputs."""
    by_name = _by_name(tools)
    outs = []
    for c in calls:
        try:
            outs.append(_output(c, _invoke(by_name, c)))
        except Exception as e:  # fed back to the model, not raised
            outs.append(_failed(c, e))
    return outs


async def aexecute(calls: List[ToolCall], tools: Any) -> List[ToolOutput]:
    """execute() for the asyncio client: a tool may be a coroutine
    function."""
    by_name = _by_name(tools)
    outs = []
    for c in calls:
        try:
            value = _invoke(by_name, c)
            if inspect.isawaitable(value):
                value = await value
            outs.append(_output(c, value))
        except Exception as e:  # fed back to the model, not raised
            outs.append(_failed(c, e))
    return outs


def _default(v: Any) -> Any:
    if hasattr(v, "model_dump"):
        return v.model_dump()
    if hasattr(v, "dict"):
        return v.dict()
    return str(v)

