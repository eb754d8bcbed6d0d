"""The asyncio client: many calls in flight on one connection."""
import asyncio
import time

import pytest

import llmgate
from conftest import SLOW


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60 * SLOW))


def test_hundred_calls_in_flight_on_one_connection(daemon):
    async def main():
        async with llmgate.AsyncClient(daemon.sock) as c:
            await c.connect()
            t0 = time.monotonic()
            rs = await asyncio.gather(*(
                c.call("n%d" % i, models=["mock/slow:500"])
                for i in range(100)))
            took = time.monotonic() - t0
            assert [r.text for r in rs] == ["echo: n%d" % i
                                            for i in range(100)]
            # One after the other they would take 50 s.
            assert took < 10 * SLOW, took
            assert len({id(c._conn)}) == 1
    run(main())


def test_async_stream_result_and_errors(daemon):
    async def main():
        async with llmgate.AsyncClient(daemon.sock) as c:
            s = c.stream("a b c", models=["mock/echo"])
            text = "".join([ch.text async for ch in s])
            assert text == "echo: a b c" == s.result.text
            with pytest.raises(llmgate.Overloaded) as ei:
                await c.call("x", models=["mock/error:overloaded"],
                             attempts=1)
            assert ei.value.attempts[0].cls == "overloaded"
            r = await c.call('{"name": "Ada"}', models=["mock/json-fix:1"],
                             schema={"type": "object",
                                     "required": ["name"]})
            assert r.parsed == {"name": "Ada"}
            r2 = await r.resume("more")
            # json-fix answers with the first user turn, as it was.
            assert r2.parsed == {"name": "Ada"}
            assert [m["role"] for m in r2.messages] == \
                ["user", "assistant", "user"]
    run(main())


def test_async_break_cancels(daemon):
    async def main():
        async with llmgate.AsyncClient(daemon.sock) as c:
            words = " ".join("w%d" % i for i in range(200))
            async for ch in c.stream(words, models=["mock/stream:100"]):
                break
            deadline = time.monotonic() + 5 * SLOW
            while (await c.status())["inflight"] != 0:
                assert time.monotonic() < deadline, "call not cancelled"
                await asyncio.sleep(0.01)
            # Cancelling the awaiting task cancels the call too.
            t = asyncio.ensure_future(c.call(words,
                                             models=["mock/slow:20000"]))
            while (await c.status())["inflight"] != 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            t.cancel()
            while (await c.status())["inflight"] != 0:
                assert time.monotonic() < deadline, "call not cancelled"
                await asyncio.sleep(0.01)
    run(main())


def test_async_tools_and_leases(daemon, uniq):
    async def main():
        calls = []

        @llmgate.tool
        async def get_weather(city: str) -> dict:
            """Current weather."""
            calls.append(city)
            if len(calls) == 1:
                raise RuntimeError("flaky")
            return {"temp_c": 4}

        model = uniq("+tool=get_weather+tool_again"
                     "+args=%7B%22city%22%3A%22Oslo%22%7D")
        async with llmgate.AsyncClient(daemon.sock) as c:
            r = await c.run_tools("weather?", models=["oa/" + model],
                                  tools=[get_weather])
            assert r.text == 'echo: {"temp_c": 4}'
            assert calls == ["Oslo", "Oslo"]
            target = "oa/" + uniq()
            async with c.lease(target, tokens=10) as lease:
                lease.report(status=429, retry_after=30)
            with pytest.raises(llmgate.Deadline):
                await c.acquire(target, timeout=0.1)
    run(main())


def test_async_daemon_unavailable(tmp_path):
    async def main():
        with pytest.raises(llmgate.DaemonUnavailable):
            await llmgate.AsyncClient(str(tmp_path / "x.sock")).call("x")
    run(main())


def test_one_client_in_two_event_loops(daemon):
    c = llmgate.AsyncClient(daemon.sock)
    assert run(c.call("one", models=["mock/echo"])).text == "echo: one"
    assert run(c.call("two", models=["mock/echo"])).text == "echo: two"
    run(c.close())
