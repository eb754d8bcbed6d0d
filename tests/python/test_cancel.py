"""Cancels the client sends itself: an explicit cancel() on a stream makes
its loop raise llmgate.Cancelled, a cancelled asyncio task raises
asyncio.CancelledError, and either way the daemon drops the call and aborts
its upstream transfer (fakeprov sees the connection go)."""
import asyncio
import threading
import time

import pytest

import llmgate
from conftest import SLOW, wait_for

WORDS = " ".join("w%d" % i for i in range(200))


def gone(fakeprov):
    return fakeprov.get("/_stats")["gone"]


def upstream_aborted(client, fakeprov, before):
    """The daemon ended the call and closed its upstream connection."""
    wait_for(lambda: client.status()["inflight"] == 0, 5,
             "the cancelled call to leave the daemon")
    wait_for(lambda: gone(fakeprov) > before, 5,
             "fakeprov to see the upstream transfer aborted")


def test_stream_cancel_raises_cancelled(client, fakeprov, uniq):
    model = uniq("+word_delay=100")
    before = gone(fakeprov)
    s = client.stream(WORDS, models=["oa/" + model])
    seen = []
    with pytest.raises(llmgate.Cancelled) as ei:
        for ch in s:
            seen.append(ch.text)
            if len(seen) == 1:
                # From another thread, while this loop waits.
                threading.Timer(0.05, s.cancel).start()
    assert ei.value.cls == "cancelled"
    assert seen and len(seen) < 200
    assert s.result is None
    upstream_aborted(client, fakeprov, before)
    assert fakeprov.count(model) == 1       # not retried elsewhere
    # The connection is still good.
    assert client.call("after", models=["mock/echo"]).text == "echo: after"


def test_closed_stream_raises_cancelled(client):
    s = client.stream(WORDS, models=["mock/stream:100"])
    for _ in s:
        break
    # The loop that was left does not end in a silent, result-less stop.
    with pytest.raises(llmgate.Cancelled):
        s.until_done()
    with pytest.raises(llmgate.Cancelled):
        next(iter(s))
    wait_for(lambda: client.status()["inflight"] == 0, 5,
             "the closed stream's call to leave the daemon")


def test_async_stream_cancel_from_another_task(daemon, fakeprov, uniq):
    model = uniq("+word_delay=100")
    before = gone(fakeprov)

    async def main():
        async with llmgate.AsyncClient(daemon.sock,
                                       timeout=30 * SLOW) as c:
            s = c.stream(WORDS, models=["oa/" + model])
            first = asyncio.Event()

            async def consume():
                async for _ in s:
                    first.set()
            t = asyncio.ensure_future(consume())
            await asyncio.wait_for(first.wait(), 10 * SLOW)
            s.cancel()
            with pytest.raises(llmgate.Cancelled):
                await asyncio.wait_for(t, 10 * SLOW)
            assert s.result is None
            # Cancelled before it was sent: nothing reaches the daemon.
            s2 = c.stream(WORDS, models=["oa/" + model])
            s2.cancel()
            with pytest.raises(llmgate.Cancelled):
                async for _ in s2:
                    pass
            assert (await c.call("after", models=["mock/echo"])).text == \
                "echo: after"
    asyncio.run(main())
    with llmgate.Client(daemon.sock) as c:
        upstream_aborted(c, fakeprov, before)
    assert fakeprov.count(model) == 1


def test_cancelled_task_raises_cancelled_error(daemon, fakeprov, uniq):
    slow = uniq("+delay=20000")
    paced = uniq("+word_delay=100")
    before = gone(fakeprov)

    async def main():
        async with llmgate.AsyncClient(daemon.sock,
                                       timeout=30 * SLOW) as c:
            deadline = time.monotonic() + 10 * SLOW
            t = asyncio.ensure_future(c.call("x", models=["oa/" + slow]))
            while fakeprov.count(slow) != 1:
                assert time.monotonic() < deadline, "call not sent upstream"
                await asyncio.sleep(0.01)
            t.cancel()
            # asyncio's contract: the awaiter sees CancelledError, not a
            # library error.
            with pytest.raises(asyncio.CancelledError):
                await t
            assert t.cancelled()
            while (await c.status())["inflight"] != 0:
                assert time.monotonic() < deadline, "call not cancelled"
                await asyncio.sleep(0.01)

            # A task iterating a stream, cancelled between two chunks.
            first = asyncio.Event()

            async def consume():
                async for _ in c.stream(WORDS, models=["oa/" + paced]):
                    first.set()
            t = asyncio.ensure_future(consume())
            await asyncio.wait_for(first.wait(), 10 * SLOW)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
    asyncio.run(main())
    with llmgate.Client(daemon.sock) as c:
        upstream_aborted(c, fakeprov, before)
    assert fakeprov.count(paced) == 1
