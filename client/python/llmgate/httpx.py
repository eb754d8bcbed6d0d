"""httpx transports that take an llmgate lease around each provider request.

Code that keeps its own SDK (openai, anthropic, google-genai...) shares the
machine's budget by giving the SDK an httpx client with this transport::

    import httpx, openai
    from llmgate.httpx import LeaseTransport

    client = openai.OpenAI(http_client=httpx.Client(transport=LeaseTransport()))

Before each request to a provider's chat endpoint the transport acquires a
lease for ``provider/model`` (waiting while the target cools down or its
budget is spent), and when the response has been read it reports the
status, Retry-After and token usage. A streamed response is reported when
the stream ends or is closed. Other requests pass through untouched.

The provider is found from the request URL: the longest base URL of the
daemon's providers (from ``status``, or the ``providers`` argument mapping
base URL to provider name) that the URL starts with. The model comes from
the JSON body's ``model`` (OpenAI, Anthropic) or from the path (Gemini
``models/{model}:generateContent``, Azure ``deployments/{name}``).
"""
from __future__ import annotations

import json
import re
import threading
from typing import Any, Dict, Iterator, AsyncIterator, List, Optional, Tuple

import httpx

from ._call import retry_after
from .aio import AsyncClient
from .client import Client
from .types import Lease

# The public endpoints of providers configured without a base_url.
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
}
# Chat endpoints, and the provider types each belongs to.
_ENDPOINTS = [
    (re.compile(r"/chat/completions$"), ("openai", "azure")),
    (re.compile(r"/responses$"), ("openai", "azure")),
    (re.compile(r"/messages$"), ("anthropic",)),
    (re.compile(r"/models/([^/:]+):(stream)?[gG]enerateContent$"),
     ("gemini",)),
]
_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/")
MAX_SCAN = 8 * 1024 * 1024  # bytes of a response searched for usage


def _norm(url: str) -> str:
    return url.rstrip("/")


class _Router:
    """Maps a request to ``provider/model``, or None to pass it through."""

    def __init__(self, providers: Optional[Dict[str, str]]) -> None:
        self.fixed = providers
        self.table: Optional[List[Tuple[str, str, Optional[str]]]] = None
        if providers is not None:
            self.table = [(_norm(u), n, None) for u, n in providers.items()]

    def load(self, status: Dict[str, Any]) -> None:
        table = []
        for p in status.get("providers") or []:
            url = p.get("base_url") or DEFAULT_BASE_URLS.get(p.get("type"))
            if url and p.get("name"):
                table.append((_norm(url), p["name"], p.get("type")))
        self.table = table

    def target(self, request: httpx.Request) -> Optional[str]:
        if request.method != "POST" or self.table is None:
            return None
        url = str(request.url.copy_with(query=None))
        path = request.url.path
        kinds: Tuple[str, ...] = ()
        model = None
        for rx, k in _ENDPOINTS:
            m = rx.search(path)
            if m:
                kinds = k
                if m.groups():
                    model = m.group(1)
                break
        if not kinds:
            return None
        best: Optional[Tuple[str, str, Optional[str]]] = None
        for base, name, typ in self.table:
            if not (url == base or url.startswith(base + "/")):
                continue
            if typ is not None and typ not in kinds:
                continue
            if best is None or len(base) > len(best[0]):
                best = (base, name, typ)
        if best is None:
            return None
        m = _AZURE_DEPLOYMENT.search(path)
        if model is None and m:
            model = m.group(1)
        if model is None:
            try:
                body = json.loads(request.content or b"{}")
                model = body.get("model") if isinstance(body, dict) else None
            except (ValueError, httpx.RequestNotRead):
                model = None
        if not isinstance(model, str) or not model:
            return None
        return "%s/%s" % (best[1], model)


def _estimate(request: httpx.Request) -> int:
    """Tokens a request may use: its output cap plus its size / 4."""
    try:
        content = request.content
    except httpx.RequestNotRead:
        return 0
    try:
        body = json.loads(content or b"{}")
    except ValueError:
        body = {}
    out = 0
    if isinstance(body, dict):
        for k in ("max_tokens", "max_completion_tokens",
                  "max_output_tokens"):
            if isinstance(body.get(k), int):
                out = body[k]
                break
    return min(0xFFFFFFFF, out + len(content) // 4)


def _usage(data: bytes) -> Tuple[Optional[int], Optional[int]]:
    """Token usage from a JSON body or the events of an SSE stream."""
    docs: List[Any] = []
    text = data.decode("utf-8", "replace")
    s = text.lstrip()
    if s.startswith("{") or s.startswith("["):
        try:
            docs.append(json.loads(s))
        except ValueError:
            pass
    if not docs:
        for line in text.splitlines():
            if line.startswith("data:"):
                try:
                    docs.append(json.loads(line[5:].strip()))
                except ValueError:
                    continue
    i = o = None
    stack = list(docs)
    while stack:
        d = stack.pop()
        if isinstance(d, list):
            stack.extend(d)
            continue
        if not isinstance(d, dict):
            continue
        for key in ("usage", "usageMetadata"):
            u = d.get(key)
            if isinstance(u, dict):
                for ik in ("prompt_tokens", "input_tokens",
                           "promptTokenCount"):
                    if isinstance(u.get(ik), int):
                        i = max(i or 0, u[ik])
                for ok in ("completion_tokens", "output_tokens",
                           "candidatesTokenCount"):
                    if isinstance(u.get(ok), int):
                        o = max(o or 0, u[ok])
        if isinstance(d.get("message"), dict):
            stack.append(d["message"])      # Anthropic's message_start
    return i, o


class _Outcome:
    """What a response said, gathered while it is read."""

    def __init__(self, response: httpx.Response, lease: Lease) -> None:
        self.lease = lease
        lease.status = response.status_code
        lease.retry_after = retry_after(response.headers)
        self.buf = bytearray()

    def add(self, chunk: bytes) -> None:
        if len(self.buf) < MAX_SCAN:
            self.buf += chunk[:MAX_SCAN - len(self.buf)]

    def finish(self) -> Lease:
        i, o = _usage(bytes(self.buf))
        self.lease.input_tokens = i
        self.lease.output_tokens = o
        return self.lease


class _SyncStream(httpx.SyncByteStream):
    def __init__(self, inner: Any, outcome: _Outcome, done: Any) -> None:
        self.inner, self.outcome, self.done = inner, outcome, done
        self.reported = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.outcome.add(chunk)
            yield chunk

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            if not self.reported:
                self.reported = True
                self.done(self.outcome.finish())


class _AsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: Any, outcome: _Outcome, done: Any) -> None:
        self.inner, self.outcome, self.done = inner, outcome, done
        self.reported = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.outcome.add(chunk)
            yield chunk

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            if not self.reported:
                self.reported = True
                await self.done(self.outcome.finish())


def _transport_failure(lease: Lease) -> Lease:
    lease.status = 0    # no answer: a connection failure
    return lease


class LeaseTransport(httpx.BaseTransport):
    """A sync httpx transport that leases each provider request.

    ``transport``: the transport that sends (default httpx.HTTPTransport()).
    ``client``: a llmgate.Client (default: one on ``socket``, resolved as
    usual). ``providers``: {base URL: provider name}; default: read from the
    daemon's status on first use. ``timeout``: longest wait for a lease
    (seconds; None: the daemon's limits). ``priority``: "high", "normal" or
    "low". A refused lease raises its llmgate.CallError (e.g. Deadline).
    ``last_lease`` is the lease of the last request reported.
    """

    def __init__(self, transport: Optional[httpx.BaseTransport] = None, *,
                 client: Optional[Client] = None,
                 socket: Optional[str] = None,
                 providers: Optional[Dict[str, str]] = None,
                 timeout: Optional[float] = None,
                 priority: Optional[str] = None) -> None:
        self.inner = transport or httpx.HTTPTransport()
        self.client = client or Client(socket)
        self.router = _Router(providers)
        self.timeout = timeout
        self.priority = priority
        self.last_lease: Optional[Lease] = None
        self._lock = threading.Lock()

    def _report(self, lease: Lease) -> None:
        self.last_lease = lease
        lease.reported = True
        from ._call import report_map
        self.client._simple(report_map(0, lease), "ok")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.router.table is None:
            with self._lock:
                if self.router.table is None:
                    self.router.load(self.client.status())
        target = self.router.target(request)
        if target is None:
            return self.inner.handle_request(request)
        lease = self.client.acquire(target, _estimate(request), self.timeout,
                                    self.priority)
        try:
            resp = self.inner.handle_request(request)
        except BaseException:
            self._report(_transport_failure(lease))
            raise
        out = _Outcome(resp, lease)
        return httpx.Response(resp.status_code, headers=resp.headers,
                              stream=_SyncStream(resp.stream, out,
                                                 self._report),
                              extensions=resp.extensions)

    def close(self) -> None:
        self.inner.close()
        self.client.close()


class AsyncLeaseTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of LeaseTransport (``client`` an AsyncClient,
    ``transport`` default httpx.AsyncHTTPTransport())."""

    def __init__(self, transport: Optional[httpx.AsyncBaseTransport] = None,
                 *, client: Optional[AsyncClient] = None,
                 socket: Optional[str] = None,
                 providers: Optional[Dict[str, str]] = None,
                 timeout: Optional[float] = None,
                 priority: Optional[str] = None) -> None:
        self.inner = transport or httpx.AsyncHTTPTransport()
        self.client = client or AsyncClient(socket)
        self.router = _Router(providers)
        self.timeout = timeout
        self.priority = priority
        self.last_lease: Optional[Lease] = None

    async def _report(self, lease: Lease) -> None:
        self.last_lease = lease
        lease.reported = True
        from ._call import report_map
        await self.client._simple(report_map(0, lease), "ok")

    async def handle_async_request(self,
                                   request: httpx.Request) -> httpx.Response:
        if self.router.table is None:
            self.router.load(await self.client.status())
        target = self.router.target(request)
        if target is None:
            return await self.inner.handle_async_request(request)
        lease = await self.client.acquire(target, _estimate(request),
                                          self.timeout, self.priority)
        try:
            resp = await self.inner.handle_async_request(request)
        except BaseException:
            await self._report(_transport_failure(lease))
            raise
        out = _Outcome(resp, lease)
        return httpx.Response(resp.status_code, headers=resp.headers,
                              stream=_AsyncStream(resp.stream, out,
                                                  self._report),
                              extensions=resp.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()
        await self.client.close()


__all__ = ["LeaseTransport", "AsyncLeaseTransport", "DEFAULT_BASE_URLS"]
