"""fallback_on= and reject=: which failures and which replies move on."""
import pytest

import llmgate


def test_reject_length_moves_on(client, uniq):
    cut = "oa/" + uniq("+length")
    nxt = "an/" + uniq()
    r = client.call("hi there", models=[cut, nxt], reject="length")
    assert r.target == nxt and r.text == "echo: hi there"
    assert [(a.target, a.cls) for a in r.attempts] == \
        [(cut, "rejected"), (nxt, "ok")]
    assert r.attempts[0].message.startswith("rejected (length)")


def test_reject_conditions(client, uniq):
    cases = [("oa", "+filter", "content_filter"),
             ("an", "+filter", "refusal"),
             ("oa", "+text=", "empty"),
             ("oa", "+text=As%20an%20AI", "match:(?i)^as an ai")]
    for prov, directive, cond in cases:
        first = prov + "/" + uniq(directive)
        r = client.call("x", models=[first, "mock/echo"],
                        reject=[cond], fallback_on=["rate_limited"])
        assert r.target == "mock/echo", cond
        assert r.attempts[0].cls == "rejected", cond
        assert ("(%s)" % cond.split(":")[0]) in r.attempts[0].message


def test_last_rejection_raises_rejected(client, uniq):
    a = "oa/" + uniq("+length")
    b = "an/" + uniq("+length")
    with pytest.raises(llmgate.Rejected) as ei:
        client.call("x", models=[a, b], reject=["length"])
    e = ei.value
    assert e.cls == "rejected" and "length" in e.message
    assert [(x.target, x.cls) for x in e.attempts] == \
        [(a, "rejected"), (b, "rejected")]


def test_fallback_on_narrows(client, fakeprov, uniq):
    bad = "oa/" + uniq("+status=500")
    nxt = uniq()
    with pytest.raises(llmgate.ServerError) as ei:
        client.call("x", models=[bad, "oa/" + nxt], attempts=1,
                    fallback_on="rate_limited")
    assert [a.cls for a in ei.value.attempts] == ["server_error"]
    assert fakeprov.count(nxt) == 0
    r = client.call("x", models=["oa/" + uniq("+status=429"), "mock/echo"],
                    attempts=1, fallback_on=["rate_limited"])
    assert r.target == "mock/echo"


def test_bad_conditions_are_invalid_requests(client):
    with pytest.raises(llmgate.InvalidRequest):
        client.call("x", models=["mock/echo"], reject=["lenght"])
    with pytest.raises(llmgate.InvalidRequest):
        client.call("x", models=["mock/echo"], fallback_on=["server_eror"])


def test_stream_with_reject_relays_only_the_answer(client, uniq):
    first = "oa/" + uniq("+text=nope")
    with client.stream("one two", models=[first, "mock/echo"],
                       reject="match:^nope$") as s:
        text = "".join(c.text for c in s)
    assert text == "echo: one two" == s.result.text
    assert [a.cls for a in s.result.attempts] == ["rejected", "ok"]


def test_async_reject(daemon, uniq):
    import asyncio

    async def run():
        async with llmgate.AsyncClient(daemon.sock) as c:
            return await c.call("x", models=["oa/" + uniq("+length"),
                                             "mock/echo"], reject="length")
    r = asyncio.run(run())
    assert [a.cls for a in r.attempts] == ["rejected", "ok"]
