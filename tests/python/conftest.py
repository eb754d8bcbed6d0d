"""Fixtures for the Python client's tests: the real llmgated and the
loopback fake provider (tests/fakeprov), started from the build directory
($LLMGATE_BUILDDIR, default: the source tree), stopped at the end.
Everything waits for a condition with a deadline, never a fixed sleep."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

BUILD = os.path.abspath(os.environ.get(
    "LLMGATE_BUILDDIR", os.path.join(os.path.dirname(__file__), "..", "..")))
LLMGATED = os.path.join(BUILD, "llmgated")
CLI = os.path.join(BUILD, "llmgate")
FAKEPROV = os.path.join(BUILD, "tests", "fakeprov")
# Under valgrind (LLMGATE_TEST_WRAPPER) everything is slower.
WRAPPER = os.environ.get("LLMGATE_TEST_WRAPPER", "").split()
SLOW = 20 if WRAPPER else 1


def wait_for(cond, timeout, what):
    """Poll cond() until it is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout * SLOW
    delay = 0.005
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %gs waiting for %s"
                                 % (timeout * SLOW, what))
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def need(path):
    if not os.access(path, os.X_OK):
        pytest.fail("%s is not built (make check builds it; set "
                    "LLMGATE_BUILDDIR for another build directory)" % path)


class FakeProv:
    def __init__(self):
        need(FAKEPROV)
        self.proc = subprocess.Popen([FAKEPROV, "-t", "600"],
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()  # "PORT n", then flush
        assert line.startswith("PORT "), "fakeprov said %r" % line
        self.port = int(line.split()[1])
        self.url = "http://127.0.0.1:%d" % self.port

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def last(self, model):
        return self.get("/_last?model=" + urllib.parse.quote(model, safe=""))

    def count(self, model, status=None):
        m = self.get("/_stats")["by_model"].get(model)
        if m is None:
            return 0
        return m["requests"] if status is None else \
            m["status"].get(str(status), 0)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


DEFAULT_CONF = """
providers = (
  { name = "oa"; type = "openai"; base_url = "%(url)s/v1";
    api_key = "test-key"; },
  { name = "an"; type = "anthropic"; base_url = "%(url)s/v1";
    api_key = "test-key"; },
  { name = "mock"; type = "mock"; }
);
routes = (
  { name = "default"; targets = [ "mock/echo" ]; },
  { name = "chain"; targets = [ "oa/chain-a+status=500", "mock/echo" ]; }
);
retry = { attempts = 2; initial_ms = 5; max_ms = 20; };
retry_budget = { ratio = 1.0; min_per_s = 1000; };
breaker = { failures = 1000; min_calls = 100000; };
"""


class Daemon:
    """llmgated on a socket in a temporary directory."""

    def __init__(self, conf_text, sock_dir=None):
        self.dir = sock_dir or tempfile.mkdtemp(prefix="llmgate-py.")
        self.sock = os.path.join(self.dir, "llmgate.sock")
        self.conf = os.path.join(self.dir, "llmgated.conf")
        self.logpath = os.path.join(self.dir, "llmgated.log")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        self.proc = None
        self.killed = False
        self.rc = 0
        self.start()

    def start(self):
        need(LLMGATED)
        env = dict(os.environ)
        env.pop("LLMGATE_SOCKET", None)
        self.log = open(self.logpath, "ab")
        start = self.log.tell()
        self.proc = subprocess.Popen(
            WRAPPER + [LLMGATED, "-v", "-s", self.sock, "-c", self.conf],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.log, env=env)

        def ready():
            assert self.proc.poll() is None, "llmgated exited: " + \
                self.read_log()
            with open(self.logpath, "rb") as f:
                f.seek(start)
                return b" ready (" in f.read()
        wait_for(ready, 10, "llmgated to get ready")

    def read_log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is None:
            return self.rc
        self.rc = self.proc.returncode
        self.proc = None
        self.log.close()
        return self.rc

    def cli(self, *args, timeout=30):
        env = dict(os.environ, LLMGATE_SOCKET=self.sock)
        return subprocess.run([CLI] + list(args), capture_output=True,
                              text=True, env=env, timeout=timeout * SLOW)

    def cleanup(self):
        if self.proc is not None:
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def fakeprov():
    fp = FakeProv()
    yield fp
    fp.stop()


@pytest.fixture(scope="session")
def daemon(fakeprov):
    d = Daemon(DEFAULT_CONF % {"url": fakeprov.url})
    yield d
    assert d.stop() == 0, d.read_log()
    shutil.rmtree(d.dir, ignore_errors=True)


@pytest.fixture
def own_daemon(fakeprov):
    """A daemon of the test's own, for tests that restart or load it."""
    made = []

    def make(conf=None):
        d = Daemon(conf or DEFAULT_CONF % {"url": fakeprov.url})
        made.append(d)
        return d
    yield make
    for d in made:
        rc = d.stop()
        log = d.read_log()
        d.cleanup()
        # A daemon the test killed has no clean exit to check.
        assert d.killed or rc == 0, "llmgated exited %s:\n%s" % (rc, log)


@pytest.fixture
def client(daemon):
    import llmgate
    with llmgate.Client(daemon.sock, timeout=30 * SLOW) as c:
        yield c


_n = [0]


@pytest.fixture
def uniq():
    """A fresh model-name prefix, so that tests don't share targets."""
    def make(s=""):
        _n[0] += 1
        return "t%d-%d%s" % (os.getpid(), _n[0], s)
    return make
