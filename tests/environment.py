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
