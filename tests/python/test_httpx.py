"""The httpx lease transport in front of the fake provider."""
import asyncio
import subprocess
import sys
import time

import httpx
import pytest

import llmgate
from llmgate.httpx import AsyncLeaseTransport, LeaseTransport
from conftest import SLOW

HDRS = {"Authorization": "Bearer test-key"}


def chat(model, **extra):
    body = {"model": model, "messages": [{"role": "user",
                                          "content": "hi there"}]}
    body.update(extra)
    return body


def target_view(client, target):
    for t in client.status()["targets"]:
        if t["target"] == target:
            return t
    return None


def test_transport_leases_and_reports_usage(daemon, fakeprov, client, uniq):
    model = uniq()
    tr = LeaseTransport(client=llmgate.Client(daemon.sock))
    with httpx.Client(transport=tr, base_url=fakeprov.url + "/v1") as h:
        r = h.post("/chat/completions", json=chat(model), headers=HDRS)
        assert r.status_code == 200
        assert r.json()["choices"][0]["message"]["content"] == \
            "echo: hi there"
        lease = tr.last_lease
        assert lease.target == "oa/" + model and lease.reported
        assert (lease.status, lease.input_tokens, lease.output_tokens) == \
            (200, 2, 3)
        # Anthropic's endpoint on the same base URL maps to its provider.
        r = h.post("/messages", headers={"x-api-key": "test-key",
                                         "anthropic-version": "2023-06-01"},
                   json=dict(chat(model), max_tokens=10))
        assert r.status_code == 200
        assert tr.last_lease.target == "an/" + model
        # Other endpoints pass through without a lease.
        before = tr.last_lease
        assert h.get("/models").status_code == 404
        assert tr.last_lease is before
    assert target_view(client, "oa/" + model)["inflight"] == 0


def test_transport_reports_a_stream_when_it_ends(daemon, fakeprov, uniq):
    model = uniq()
    tr = LeaseTransport(client=llmgate.Client(daemon.sock),
                        providers={fakeprov.url + "/v1": "oa"})
    with httpx.Client(transport=tr, base_url=fakeprov.url + "/v1") as h:
        body = chat(model, stream=True,
                    stream_options={"include_usage": True})
        with h.stream("POST", "/chat/completions", json=body,
                      headers=HDRS) as r:
            lines = r.iter_lines()
            first = next(lines)
            assert first.startswith("data:")
            assert tr.last_lease is None      # not reported mid-stream
            rest = list(lines)
        assert any("[DONE]" in line for line in rest)
        lease = tr.last_lease
        assert lease.reported and lease.status == 200
        assert (lease.input_tokens, lease.output_tokens) == (2, 3)


SECOND = r"""
import sys, time, httpx, llmgate
from llmgate.httpx import LeaseTransport
sock, url, model = sys.argv[1:4]
tr = LeaseTransport(client=llmgate.Client(sock))
with httpx.Client(transport=tr, base_url=url) as h:
    t0 = time.monotonic()
    r = h.post("/chat/completions", headers={"Authorization": "Bearer test-key"},
               json={"model": model, "messages": [{"role": "user", "content": "x"}]})
    print(r.status_code, "%.3f" % time.monotonic())
"""


def test_429_in_one_process_makes_another_wait(daemon, fakeprov, client,
                                                uniq):
    model = uniq("+fail=1+status=429+retry_after=2")
    tr = LeaseTransport(client=llmgate.Client(daemon.sock))
    with httpx.Client(transport=tr, base_url=fakeprov.url + "/v1") as h:
        r = h.post("/chat/completions", json=chat(model), headers=HDRS)
        assert r.status_code == 429
    reported = time.monotonic()     # CLOCK_MONOTONIC: the same in the child
    assert tr.last_lease.status == 429 and tr.last_lease.retry_after == 2
    assert target_view(client, "oa/" + model)["cooldown_ms"] > 1000
    p = subprocess.run([sys.executable, "-c", SECOND, daemon.sock,
                        fakeprov.url + "/v1", model], capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert p.returncode == 0, p.stderr
    status, done = p.stdout.split()
    assert status == "200"
    # It waited out the 2 s the provider asked for.
    assert float(done) - reported > 1.8
    # The provider saw one 429 and then the one request that succeeded.
    assert fakeprov.count(model, 429) == 1
    assert fakeprov.count(model, 200) == 1


def test_transport_failure_is_reported(daemon, fakeprov, uniq):
    model = uniq("+drop")
    tr = LeaseTransport(client=llmgate.Client(daemon.sock))
    with httpx.Client(transport=tr, base_url=fakeprov.url + "/v1") as h:
        with pytest.raises(httpx.TransportError):
            h.post("/chat/completions", json=chat(model), headers=HDRS)
    assert tr.last_lease.status == 0 and tr.last_lease.reported


def test_async_transport(daemon, fakeprov, uniq):
    model = uniq()

    async def main():
        tr = AsyncLeaseTransport(client=llmgate.AsyncClient(daemon.sock))
        async with httpx.AsyncClient(transport=tr,
                                     base_url=fakeprov.url + "/v1") as h:
            rs = await asyncio.gather(*(
                h.post("/chat/completions", json=chat(model), headers=HDRS)
                for _ in range(10)))
            assert [r.status_code for r in rs] == [200] * 10
            assert tr.last_lease.target == "oa/" + model
            body = chat(model, stream=True,
                        stream_options={"include_usage": True})
            async with h.stream("POST", "/chat/completions", json=body,
                                headers=HDRS) as r:
                lines = [x async for x in r.aiter_lines()]
            assert "data: [DONE]" in [x.strip() for x in lines]
            assert tr.last_lease.output_tokens == 3
        assert fakeprov.count(model) == 11
    asyncio.run(asyncio.wait_for(main(), 30 * SLOW))


def test_router_maps_urls_to_targets():
    from llmgate.httpx import _Router
    r = _Router(None)
    r.load({"providers": [
        {"name": "openai", "type": "openai", "base_url": None},
        {"name": "anthropic", "type": "anthropic", "base_url": None},
        {"name": "google", "type": "gemini", "base_url": None},
        {"name": "az", "type": "azure",
         "base_url": "https://me.openai.azure.com"},
        {"name": "local", "type": "openai",
         "base_url": "http://127.0.0.1:8080/v1/"}]})

    def target(url, body=None, method="POST"):
        return r.target(httpx.Request(method, url, json=body))
    assert target("https://api.openai.com/v1/chat/completions",
                  {"model": "gpt-4o-mini"}) == "openai/gpt-4o-mini"
    assert target("https://api.openai.com/v1/responses",
                  {"model": "gpt-4o"}) == "openai/gpt-4o"
    assert target("https://api.anthropic.com/v1/messages",
                  {"model": "claude-3-5-haiku-latest"}) == \
        "anthropic/claude-3-5-haiku-latest"
    assert target("https://generativelanguage.googleapis.com/v1beta/models/"
                  "gemini-2.0-flash:streamGenerateContent?alt=sse",
                  {"contents": []}) == "google/gemini-2.0-flash"
    assert target("https://me.openai.azure.com/openai/deployments/dep1/"
                  "chat/completions?api-version=2024-10-21",
                  {"messages": []}) == "az/dep1"
    assert target("http://127.0.0.1:8080/v1/chat/completions",
                  {"model": "llama"}) == "local/llama"
    # Not a chat endpoint, not POST, no model, or an unknown host: no lease.
    assert target("https://api.openai.com/v1/embeddings",
                  {"model": "x"}) is None
    assert target("https://api.openai.com/v1/chat/completions",
                  method="GET") is None
    assert target("https://api.openai.com/v1/chat/completions", {}) is None
    assert target("https://example.com/v1/chat/completions",
                  {"model": "x"}) is None
    # The wrong endpoint kind for a provider's type is not leased.
    assert target("https://api.anthropic.com/v1/chat/completions",
                  {"model": "x"}) is None
