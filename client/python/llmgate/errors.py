"""Exceptions raised by the llmgate client.

Two families:

* ``CallError`` and its subclasses, one per llmgate error class: the daemon
  answered and the call (or acquire, or report) failed. Each carries the
  whole list of upstream ``attempts`` the daemon made, in order, like
  pydantic-ai's ``FallbackExceptionGroup`` or Mirascope's
  ``RetriesExhausted``.
* ``DaemonUnavailable``: no daemon answered, the connection was lost, the
  daemon sent something that is not the protocol (``ProtocolError``) or
  nothing in time (``ReplyTimeout``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Type

if TYPE_CHECKING:  # pragma: no cover
    from .types import Attempt, Result


class LlmgateError(Exception):
    """Base class of every exception this package raises."""


class DaemonUnavailable(LlmgateError, ConnectionError):
    """llmgated could not be reached, or the connection to it was lost."""


class ProtocolError(DaemonUnavailable):
    """llmgated sent bytes that are not the llmgate protocol; the
    connection was closed."""


class ReplyTimeout(DaemonUnavailable, TimeoutError):
    """No reply from llmgated within the client's timeout."""


class CallError(LlmgateError):
    """A call failed; the subclass names the error class.

    Attributes: ``cls`` (the class name, e.g. ``"rate_limited"``),
    ``message``, ``attempts`` (every upstream attempt and skipped target,
    in order), ``partial`` (some output reached the client first), ``text``
    (that output) and ``result`` (the whole decoded answer, when there is
    one).
    """

    cls = "internal"

    def __init__(self, message: str, attempts: "Optional[List[Attempt]]" = None,
                 *, cls: Optional[str] = None, partial: bool = False,
                 text: str = "", result: "Optional[Result]" = None) -> None:
        super().__init__(message)
        if cls is not None:
            self.cls = cls
        self.message = message
        self.attempts: "List[Attempt]" = list(attempts or [])
        self.partial = partial
        self.text = text
        self.result = result

    def __str__(self) -> str:
        s = "%s: %s" % (self.cls, self.message)
        if self.attempts:
            s += " (%s)" % ", ".join(
                "%s %s%s" % (a.target, a.cls,
                             " %d" % a.status if a.status else "")
                for a in self.attempts)
        return s


class RateLimited(CallError):
    """Every target was rate limited (429, or the local budget)."""
    cls = "rate_limited"


class Overloaded(CallError):
    """The provider is overloaded (529/503)."""
    cls = "overloaded"


class ServerError(CallError):
    """The provider failed (5xx)."""
    cls = "server_error"


class Timeout(CallError):
    """An upstream attempt timed out."""
    cls = "timeout"


class ConnectionFailed(CallError):
    """The daemon could not reach the provider."""
    cls = "connection"


class ParseError(CallError):
    """The provider's reply could not be read."""
    cls = "parse_error"


class QuotaExhausted(CallError):
    """The account's quota or credit is used up."""
    cls = "quota_exhausted"


class Auth(CallError):
    """The provider refused the API key."""
    cls = "auth"


class Permission(CallError):
    """Not allowed (provider 403, or an admin operation)."""
    cls = "permission"


class NotFound(CallError):
    """Unknown model, provider, route or lease."""
    cls = "not_found"


class ContextLength(CallError):
    """The conversation does not fit the model's context."""
    cls = "context_length"


class ContentFilter(CallError):
    """The provider's content filter refused or cut the reply."""
    cls = "content_filter"


class BadRequest(CallError):
    """The provider refused the request as malformed."""
    cls = "bad_request"


class SchemaError(CallError):
    """The reply did not satisfy the schema, repairs included."""
    cls = "schema"


class CircuitOpen(CallError):
    """The target's circuit breaker is open."""
    cls = "circuit_open"


class BudgetExhausted(CallError):
    """The machine-wide retry budget is spent, or the caller's client
    class spent its token budget (the message says when it resets)."""
    cls = "budget_exhausted"


class Deadline(CallError):
    """The call's timeout passed (waiting for budget included)."""
    cls = "deadline"


class Cancelled(CallError):
    """The call was cancelled."""
    cls = "cancelled"


class InvalidRequest(CallError):
    """llmgated refused the request itself."""
    cls = "invalid_request"


class InternalError(CallError):
    """Something went wrong inside llmgated."""
    cls = "internal"


class Rejected(CallError):
    """The last target's reply met one of the call's reject= conditions
    (each rejected reply is an attempt of class "rejected")."""
    cls = "rejected"


BY_CLASS: Dict[str, Type[CallError]] = {
    c.cls: c for c in (
        RateLimited, Overloaded, ServerError, Timeout, ConnectionFailed,
        ParseError, QuotaExhausted, Auth, Permission, NotFound, ContextLength,
        ContentFilter, BadRequest, SchemaError, CircuitOpen, BudgetExhausted,
        Deadline, Cancelled, InvalidRequest, InternalError, Rejected)
}


def error_for(cls: str, message: str, attempts: "Optional[List[Attempt]]" = None,
              **kw: object) -> CallError:
    """The CallError subclass for class name cls (CallError if unknown)."""
    kind = BY_CLASS.get(cls, CallError)
    return kind(message, attempts, cls=cls, **kw)  # type: ignore[arg-type]
