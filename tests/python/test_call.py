"""Calls: options on the wire, results, errors with their attempts."""
import threading

import pytest

import llmgate
from conftest import wait_for


def test_call_result(client, fakeprov, uniq):
    m = "oa/" + uniq()
    r = client.call("hello there", models=[m])
    assert r.text == "echo: hello there"
    assert r.target == m
    assert r.finish_reason == "stop"
    assert r.usage.input_tokens == 2 and r.usage.output_tokens == 3
    assert len(r.attempts) == 1
    a = r.attempts[0]
    assert (a.target, a.cls, a["class"], a.status) == (m, "ok", "ok", 200)
    assert a.ms >= 0 and a.waited_ms >= 0 and not a.skipped


def test_stop_sequence(client, fakeprov, uniq):
    # Anthropic says which stop sequence ended the reply; OpenAI does not.
    r = client.call("hi", models=["an/" + uniq("+stop_seq=END")],
                    stop=["END"])
    assert (r.finish_reason, r.stop_sequence) == ("stop", "END")
    r = client.call("hi", models=["oa/" + uniq("+stop_seq=END")],
                    stop=["END"])
    assert (r.finish_reason, r.stop_sequence) == ("stop", None)
    s = client.stream("hi", models=["an/" + uniq("+stop_seq=END")],
                      stop=["END"])
    assert "".join(c.text for c in s) == "echo: hi"
    assert s.result.stop_sequence == "END"


def test_every_option_reaches_the_provider(client, fakeprov, uniq):
    model = uniq()
    r = client.call(messages=[{"role": "user", "content": "first"},
                              {"role": "assistant", "content": "ok"},
                              {"role": "user", "content": "second"}],
                    models=["oa/" + model], system="be terse",
                    max_tokens=77, temperature=0.0, top_p=0.5, seed=42,
                    stop=["\n\n", "END"], priority="high", timeout=20,
                    attempts=1, on_cut="fail")
    assert r.text == "echo: second"
    body = fakeprov.last(model)["body"]
    assert body["messages"][0] == {"role": "system", "content": "be terse"}
    assert [m["content"] for m in body["messages"][1:]] == \
        ["first", "ok", "second"]
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 77
    assert body["temperature"] == 0.0
    assert body["top_p"] == 0.5
    assert body["seed"] == 42
    assert body["stop"] == ["\n\n", "END"]


def test_attempts_option_and_fallback(client, fakeprov, uniq):
    bad = "oa/" + uniq("+fail=1+status=500")
    # Two attempts per target: the retry succeeds on the same target.
    r = client.call("x", models=[bad], attempts=2)
    assert [a.cls for a in r.attempts] == ["server_error", "ok"]
    assert r.attempts[0].status == 500
    # One attempt: the chain falls back to the next target.
    bad = "oa/" + uniq("+fail=1+status=500")
    r = client.call("x", models=[bad, "mock/echo"], attempts=1)
    assert r.target == "mock/echo"
    assert [(a.target, a.cls) for a in r.attempts] == \
        [(bad, "server_error"), ("mock/echo", "ok")]


def test_route(client):
    r = client.call("via route", route="chain")
    assert r.target == "mock/echo"
    assert r.attempts[0].cls == "server_error"
    # Neither models nor route: the default route.
    assert client.call("hi").target == "mock/echo"


def test_timeout_option_is_the_deadline(client):
    with pytest.raises(llmgate.Deadline) as ei:
        client.call("slow", models=["mock/slow:3000"], timeout=0.2)
    assert ei.value.cls == "deadline"


@pytest.mark.parametrize("cls", sorted(
    set(llmgate.ERRORS) - {"cancelled", "deadline", "invalid_request",
                           "circuit_open", "budget_exhausted",
                           "rejected"}))
def test_error_class_raised_with_attempts(client, cls):
    with pytest.raises(llmgate.ERRORS[cls]) as ei:
        client.call("x", models=["mock/error:" + cls], attempts=1)
    e = ei.value
    assert isinstance(e, llmgate.CallError)
    assert e.cls == cls
    # A schema failure is fed back (repairs), so it may take several.
    assert e.attempts and {a.target for a in e.attempts} == \
        {"mock/error:" + cls}
    assert {a.cls for a in e.attempts} == {cls}


def test_error_carries_every_attempt(client, fakeprov, uniq):
    a = "oa/" + uniq("+status=429")
    b = "an/" + uniq("+code=overloaded_error")
    with pytest.raises(llmgate.Overloaded) as ei:
        client.call("x", models=[a, b], attempts=1)
    e = ei.value
    assert [(x.target, x.cls, x.status) for x in e.attempts] == \
        [(a, "rate_limited", 429), (b, "overloaded", 529)]
    assert "rate_limited" in str(e) and b in str(e)


def test_status_codes_map_to_classes(client, fakeprov, uniq):
    cases = [("status=429", llmgate.RateLimited),
             ("status=401", llmgate.Auth),
             ("code=context_length_exceeded", llmgate.ContextLength),
             ("status=404", llmgate.NotFound),
             ("status=503", llmgate.Overloaded),
             ("code=insufficient_quota", llmgate.QuotaExhausted)]
    for d, exc in cases:
        with pytest.raises(exc) as ei:
            client.call("x", models=["oa/" + uniq("+" + d)], attempts=1)
        assert ei.value.attempts[0].status is not None


def test_invalid_request_and_bad_arguments(client):
    with pytest.raises(llmgate.InvalidRequest):
        client.call("x", models=["nosuchprovider/m"])
    with pytest.raises(TypeError):
        client.call("x", messages=[{"role": "user", "content": "y"}])
    with pytest.raises(ValueError):
        client.call("x", priority="urgent")
    with pytest.raises(TypeError):
        client.call("x", colour="red")


def test_daemon_unavailable(tmp_path):
    with pytest.raises(llmgate.DaemonUnavailable) as ei:
        llmgate.Client(str(tmp_path / "none.sock")).call("x")
    assert "none.sock" in str(ei.value)


def test_socket_resolution(monkeypatch):
    monkeypatch.setenv("LLMGATE_SOCKET", "/x/env.sock")
    assert llmgate.socket_path("/x/arg.sock") == "/x/arg.sock"
    assert llmgate.socket_path() == "/x/env.sock"
    assert llmgate.Client().path == "/x/env.sock"
    monkeypatch.delenv("LLMGATE_SOCKET")
    # The same rule as libllmgate's and llmgated's: no XDG_RUNTIME_DIR.
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert llmgate.socket_path() == "/run/llmgate/llmgate.sock"


def test_threads_share_one_connection(client):
    out = {}

    def work(i):
        out[i] = client.call("n%d" % i, models=["mock/echo"]).text
    ts = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert out == {i: "echo: n%d" % i for i in range(32)}
    assert client.status()["clients"] >= 1


def test_status_ping_metrics(client, fakeprov):
    client.call("x", models=["mock/echo"])
    st = client.status()
    assert isinstance(st["targets"], list)
    assert any(t["target"] == "mock/echo" for t in st["targets"])
    assert "available" in st["retry_budget"]
    assert {"name": "oa", "type": "openai",
            "base_url": fakeprov.url + "/v1"} in st["providers"]
    assert client.ping() >= 0
    assert "llmgate_" in client.metrics()


BREAKER_CONF = """
providers = ( { name = "mock"; type = "mock"; } );
retry = { attempts = 3; initial_ms = 1; max_ms = 2; };
retry_budget = { ratio = 0.0; min_per_s = 0.0; };
breaker = { failures = 1; min_calls = 1000; open_ms = 60000; };
"""


def test_circuit_open_and_budget_exhausted(own_daemon):
    d = own_daemon(BREAKER_CONF)
    with llmgate.Client(d.sock, timeout=30) as c:
        # No retry budget at all: the retry is skipped.
        with pytest.raises(llmgate.BudgetExhausted) as ei:
            c.call("x", models=["mock/error:server_error"])
        assert [a.cls for a in ei.value.attempts] == \
            ["server_error", "budget_exhausted"]
        assert ei.value.attempts[1].skipped
        # That failure opened the breaker: the target is skipped now.
        with pytest.raises(llmgate.CircuitOpen) as ei:
            c.call("x", models=["mock/error:server_error"])
        assert [(a.cls, a.skipped) for a in ei.value.attempts] == \
            [("circuit_open", True)]


def test_interrupted_call_is_cancelled(client):
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            client.call("x", models=["mock/slow:30000"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    wait_for(lambda: client.status()["inflight"] == 0, 5,
             "the interrupted call to leave the daemon")
