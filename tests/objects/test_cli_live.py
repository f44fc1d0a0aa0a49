"""The `suanli` CLI as a buyer runs it: a subprocess against the live server, a real node
agent running the job in real podman."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from banking.services.customers import api_key_issue
from scheduler.models import Job, Node
from scheduler.services.nodes import node_register
from scheduler.services.placement import placement_run
from tests.live import wait_until

from .live_parts import agent_process, wait_isolated

__all__ = ["agent_process"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("live-objects"),
              pytest.mark.slow]

SUANLI = Path(sys.executable).with_name("suanli")


def run(tmp_path: Path, *args: str, server: str | None = None, **env: str) -> Any:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SUANLI_")}
    environment.update({"XDG_CONFIG_HOME": str(tmp_path / "config"), **env})
    argv = [str(SUANLI), *(["--server", server] if server else []), *args]
    return subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=120)


def test_a_session_login_submit_wait_and_errors(live_server, make_org, settings,
                                                agent_process, tmp_path):
    settings.SCHEDULER_AUTO_APPROVE_NODES = True
    provider = make_org(provider=True, buyer=False)
    buyer = make_org(tokens=10_000_000_000)
    key = api_key_issue(organization_id=buyer.pk).secret
    registered = node_register(provider_id=provider.pk, name="cli-1", gpu_class="H100-80GB",
                               gpu_count=1, region="eu-west")

    # A wrong key: the API's code and message, and nothing kept
    bad = run(tmp_path, "login", "--api-key", "sk_nope", server=live_server.url)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: not_authenticated: ")
    assert not (tmp_path / "config" / "suanli" / "config.json").exists()

    login = run(tmp_path, "login", "--api-key", key, server=live_server.url)
    assert login.returncode == 0, login.stderr
    saved = tmp_path / "config" / "suanli" / "config.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text()) == {"server": live_server.url, "api_key": key}

    gpus = run(tmp_path, "gpus")
    assert gpus.returncode == 0 and "H100-80GB" in gpus.stdout

    agent_process(live_server.url, registered.token)
    wait_until(lambda: Node.objects.filter(pk=registered.node.pk, status="online").exists(),
               30, "the node online")
    wait_isolated(registered.node.pk)
    submit = run(tmp_path, "jobs", "submit", "--gpu", "H100-80GB", "--gpus", "1",
                 "--max-duration", "10m", "--env", "WHO=cli", "--idempotency-key", "once-1",
                 "--", "sh", "-c", "echo hi $WHO; exit 3")
    assert submit.returncode == 0, submit.stderr
    job = Job.objects.get()
    hold_line, job_line = submit.stdout.splitlines()
    assert hold_line.startswith(f"hold: {job.hold_amount:,} tokens (1 x H100-80GB at ")
    assert job_line == f"job {job.pk} queued"
    assert job.spec == {"command": ["sh", "-c", "echo hi $WHO; exit 3"],
                        "environment": {"WHO": "cli"}}
    assert job.max_duration_s == 600
    # The same idempotency key again: the same job, no second one
    again = run(tmp_path, "jobs", "submit", "--gpu", "H100-80GB", "--max-duration", "10m",
                "--env", "WHO=cli", "--idempotency-key", "once-1", "--", "sh", "-c",
                "echo hi $WHO; exit 3")
    assert again.stdout.splitlines()[1] == f"job {job.pk} queued"
    assert Job.objects.count() == 1

    placement_run()
    wait = run(tmp_path, "jobs", "wait", str(job.pk), "--timeout", "60")
    assert wait.returncode == 3  # the job's exit code
    assert wait.stderr.startswith(f"job {job.pk} failed: exit code 3")
    logs = run(tmp_path, "jobs", "logs", "--marks", str(job.pk))
    assert logs.stdout == "O hi cli\n"
    listing = run(tmp_path, "jobs", "list")
    assert listing.stdout.splitlines()[1].split()[:2] == [str(job.pk), "failed"]

    missing = run(tmp_path, "jobs", "show", "999999")
    assert (missing.returncode, missing.stderr) == (1, "error: not_found: Job not found.\n")
    refused = run(tmp_path, "jobs", "submit", "--gpu", "Z-1", "--", "true")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: unknown_gpu_class: ")
    assert Job.objects.count() == 1
    cancel = run(tmp_path, "jobs", "cancel", str(job.pk))
    assert cancel.returncode == 1 and cancel.stderr.startswith("error: job_finished: ")
