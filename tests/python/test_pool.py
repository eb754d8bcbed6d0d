"""Deployment pools through the Python client: a pool's name in models=."""
import llmgate

POOL_CONF = """
providers = (
  { name = "ka"; type = "openai"; base_url = "%(url)s/v1";
    api_key = "test-key"; },
  { name = "kb"; type = "openai"; base_url = "%(url)s/v1";
    api_key = "test-key"; }
);
pools = ( { name = "gpt"; targets = [ "ka/%(bad)s", "kb/%(good)s" ]; } );
retry = { attempts = 1; };
retry_budget = { ratio = 0.0; min_per_s = 0.0; };
"""


def test_pool_moves_past_a_429(own_daemon, fakeprov, uniq):
    bad, good = uniq("+status=429"), uniq()
    d = own_daemon(POOL_CONF % {"url": fakeprov.url, "bad": bad,
                                "good": good})
    with llmgate.Client(d.sock, timeout=30) as c:
        r = c.call("hello there", models=["gpt", "kb/" + uniq()])
        assert r.text == "echo: hello there"
        assert r.target == "kb/" + good
        assert [(a.target, a.cls) for a in r.attempts] == \
            [("ka/" + bad, "rate_limited"), ("kb/" + good, "ok")]
        assert "pool gpt: moved to another member" in r.attempts[0].message
        # The 429 key now cools down: the next call skips it.
        r = c.call("again", models=["gpt"])
        assert [a.target for a in r.attempts] == ["kb/" + good]
        assert c.status()["counters"]["retries"] == 0
    assert fakeprov.count(bad) == 1


def test_lease_on_a_pool(own_daemon, fakeprov, uniq):
    one, two = uniq(), uniq()
    d = own_daemon(POOL_CONF % {"url": fakeprov.url, "bad": one,
                                "good": two})
    with llmgate.Client(d.sock, timeout=30) as c:
        with c.lease("gpt") as first:
            assert first.target in ("ka/" + one, "kb/" + two)
            first.report(status=429, retry_after=30)
        other = "kb/" + two if first.target == "ka/" + one else "ka/" + one
        # That member cools down: the next leases go to the other.
        for _ in range(3):
            with c.lease("gpt") as lease:
                assert lease.target == other
