"""Streams: chunks, the final result, cuts resumed, cancel on break."""
import pytest

import llmgate
from conftest import wait_for


def test_stream_chunks_and_result(client, fakeprov, uniq):
    m = "oa/" + uniq()
    s = client.stream("one two three", models=[m])
    chunks = [c for c in s]
    assert len(chunks) >= 3
    assert "".join(c.text for c in chunks) == "echo: one two three"
    assert s.result.text == "echo: one two three" == s.text
    assert s.result.usage.output_tokens == 4
    assert [a.cls for a in s.result.attempts] == ["ok"]
    assert fakeprov.last(m.split("/", 1)[1])["body"]["stream"] is True


def test_stream_cut_is_resumed(client, fakeprov, uniq):
    model = uniq("+fail=1+cut=2")
    prompt = "alpha beta gamma delta epsilon"
    with client.stream(prompt, models=["oa/" + model],
                       on_cut="resume") as s:
        text = "".join(c.text for c in s)
    # The client saw every word once: the cut piece and the rest.
    assert text == "echo: " + prompt == s.result.text
    assert [a.cls for a in s.result.attempts][-1] == "ok"
    assert len(s.result.attempts) == 2
    assert fakeprov.count(model) == 2
    # The cut part is billed too: usage_total is more than the answer's.
    u, t = s.result.usage, s.result.usage_total
    assert u.output_tokens > 0
    assert t.output_tokens > u.output_tokens
    assert t.input_tokens > u.input_tokens


def test_stream_cut_fails_with_on_cut_fail(client, uniq):
    s = client.stream("a b c d e f", models=["oa/" + uniq("+cut=2")],
                      on_cut="fail", attempts=1)
    seen = []
    with pytest.raises(llmgate.CallError) as ei:
        for c in s:
            seen.append(c.text)
    assert ei.value.partial
    assert "".join(seen).startswith("echo: ")


def test_stream_error_raised_from_the_loop(client):
    with pytest.raises(llmgate.RateLimited) as ei:
        for _ in client.stream("x", models=["mock/error:rate_limited"],
                               attempts=1):
            pass
    assert ei.value.attempts[0].target == "mock/error:rate_limited"


def test_break_cancels_in_the_daemon(client):
    words = " ".join("w%d" % i for i in range(200))
    for c in client.stream(words, models=["mock/stream:100"]):
        assert c.text
        break
    # The daemon drops the call at once: nothing stays in flight.
    wait_for(lambda: client.status()["inflight"] == 0, 5,
             "the cancelled call to leave the daemon")
    # The connection is still good.
    assert client.call("after", models=["mock/echo"]).text == "echo: after"


def test_stream_tool_call_deltas(client, uniq):
    m = "oa/" + uniq("+tool=get_weather+args=%7B%22city%22%3A%22Oslo%22%7D")
    tools = [{"name": "get_weather", "description": "Weather",
              "parameters": {"type": "object",
                             "properties": {"city": {"type": "string"}}}}]
    s = client.stream("weather?", models=[m], tools=tools)
    deltas = [c for c in s if c.tool_index >= 0]
    assert deltas and deltas[0].tool_name == "get_weather"
    assert "".join(c.tool_args or "" for c in deltas) == '{"city":"Oslo"}'
    assert s.result.finish_reason == "tool_calls"
    assert s.result.tool_calls[0].args == {"city": "Oslo"}


def test_stream_cut_restarted(client):
    s = client.stream("one two three four five", models=["mock/cut:2"],
                      on_cut="restart")
    chunks = list(s)
    assert any(c.reset for c in chunks)
    shown = ""
    for c in chunks:
        shown = (c.text if c.reset else shown + c.text)
    assert shown == "echo: one two three four five" == s.result.text
    assert len(s.result.attempts) == 2
