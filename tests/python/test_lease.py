"""Leases from Python share the machine's budget with C clients."""
import time

import pytest

import llmgate


def target_view(client, target):
    for t in client.status()["targets"]:
        if t["target"] == target:
            return t
    return None


def test_python_429_cools_the_target_for_the_c_client(client, daemon, uniq):
    target = "oa/" + uniq()
    with client.lease(target, tokens=100) as lease:
        assert lease.target == target and lease.id > 0
        lease.report(status=429, retry_after=30,
                     usage={"prompt_tokens": 10, "completion_tokens": 2})
    assert lease.reported
    assert target_view(client, target)["cooldown_ms"] > 20000
    # The C client (the llmgate CLI) cannot get a lease before it.
    t0 = time.monotonic()
    r = daemon.cli("acquire", "-m", target, "--timeout", "300")
    assert r.returncode != 0
    assert "deadline" in r.stderr
    assert time.monotonic() - t0 < 10


def test_c_429_makes_python_wait(client, daemon, uniq):
    target = "oa/" + uniq()
    r = daemon.cli("acquire", "-m", target)
    assert r.returncode == 0, r.stderr
    lease_id = r.stdout.strip().strip('"')
    r = daemon.cli("report", lease_id, "--status", "429",
                   "--retry-after", "30")
    assert r.returncode == 0, r.stderr
    with pytest.raises(llmgate.Deadline) as ei:
        client.acquire(target, timeout=0.2)
    assert ei.value.cls == "deadline"


def test_lease_reports_the_exception(client, uniq):
    class FakeResponse:
        status_code = 429
        headers = {"retry-after": "40"}

    class RateLimitError(Exception):
        response = FakeResponse()
        status_code = 429

    target = "oa/" + uniq()
    with pytest.raises(RateLimitError):
        with client.lease(target) as lease:
            raise RateLimitError("slow down")
    assert (lease.status, lease.retry_after) == (429, 40.0)
    assert target_view(client, target)["cooldown_ms"] > 30000


def test_lease_clean_exit_reports_success(client, uniq):
    target = "oa/" + uniq()
    with client.lease(target) as lease:
        pass
    assert lease.reported and lease.status == 200
    v = target_view(client, target)
    assert v["cooldown_ms"] == 0 and v["inflight"] == 0
    # A lease is reported once.
    with pytest.raises(ValueError):
        client.report(lease, status=200)


def test_report_of_unknown_lease_is_refused(client):
    with pytest.raises(llmgate.CallError) as ei:
        client.report(llmgate.Lease(id=12345, target="oa/x"), status=200)
    assert "unknown" in ei.value.message


def test_acquire_refused_for_unknown_provider(client):
    with pytest.raises(llmgate.CallError):
        client.acquire("nosuch/model", timeout=1)
