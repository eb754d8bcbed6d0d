"""llmgate: a Python client for llmgated, the machine-wide LLM gateway.

It speaks llmgated's native protocol over its Unix socket (msgpack frames,
many requests in flight on one connection), as libllmgate does::

    import llmgate

    with llmgate.Client() as client:
        r = client.call("Hello", models=["openai/gpt-4o-mini",
                                         "anthropic/claude-3-5-haiku-latest"])
        print(r.text, r.target, r.usage)

See Client, AsyncClient, tool, and llmgate.httpx for leases in front of
another SDK's HTTP client.
"""
from ._proto import socket_path
from .aio import AsyncClient, AsyncStream
from .client import Client, Stream
from .errors import (Auth, BadRequest, BudgetExhausted, CallError, Cancelled,
                     CircuitOpen, ConnectionFailed, ContentFilter,
                     ContextLength, DaemonUnavailable, Deadline,
                     InternalError, InvalidRequest, LlmgateError, NotFound,
                     Overloaded, ParseError, Permission, ProtocolError,
                     QuotaExhausted, RateLimited, Rejected, ReplyTimeout,
                     SchemaError,
                     ServerError, Timeout, BY_CLASS as ERRORS)
from .tools import Tool, ToolOutput, tool
from .types import Attempt, Chunk, Lease, Result, ToolCall, Usage

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "AsyncStream", "Attempt", "Auth", "BadRequest",
    "BudgetExhausted", "CallError", "Cancelled", "Chunk", "CircuitOpen",
    "Client", "ConnectionFailed", "ContentFilter", "ContextLength",
    "DaemonUnavailable", "Deadline", "ERRORS", "InternalError",
    "InvalidRequest", "Lease", "LlmgateError", "NotFound", "Overloaded",
    "ParseError", "Permission", "ProtocolError", "QuotaExhausted",
    "RateLimited", "Rejected", "ReplyTimeout", "Result", "SchemaError", "ServerError",
    "Stream", "Timeout", "Tool", "ToolCall", "ToolOutput", "Usage",
    "socket_path", "tool",
]
