"""Loaded by pytest before Django's settings (`-p tests.environment` in pyproject.toml):
the suite runs with DJANGO_DEBUG off, as production does, so it says what production
would have to: a secret key of its own, the fake gateway by name, and plain http (the
test client and the live servers speak no TLS). Processes the tests start inherit it."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-" + "k" * 40)
os.environ.setdefault("PAYMENTS_GATEWAY", "fake")
os.environ.setdefault("DJANGO_HTTPS", "false")

# The node agent is its own distribution (agent/). Worktrees share one venv, whose editable
# install of it may point at another checkout: the agents the tests start (and this
# process, through pytest's `pythonpath`) run this checkout's.
_AGENT_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "agent")
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_AGENT_SOURCE, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)

# Each xdist worker gets a Redis database of its own: a test's cache.clear() empties its
# whole database, which would wipe the rate-limit counters of a test running beside it.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and os.environ.get("REDIS_URL"):
    from urllib.parse import urlsplit, urlunsplit

    _url = urlsplit(os.environ["REDIS_URL"])
    _base = int(_url.path.lstrip("/") or 0)
    _own = (_base + 1 + int(_worker[2:])) % 16
    os.environ["REDIS_URL"] = urlunsplit(_url._replace(path=f"/{_own}"))
