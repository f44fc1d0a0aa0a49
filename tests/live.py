"""Live processes for the reliability and browser suites: a real Celery worker (with beat)
and real node agents, against pytest-django's live server on PostgreSQL."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection

# The repository (tests/live.py is one level down): the worker and agents run from it, so
# they import this checkout's code, not whatever the shared virtualenv was installed from.
ROOT = Path(__file__).resolve().parents[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _database_url() -> str:
    db = django_settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:"
            f"{db.get('PORT') or 5432}/{db['NAME']}")


@pytest.fixture
def live_settings(settings: Any) -> Any:
    """Short timeouts so a lost node is noticed in seconds, in this process (the live
    server) and in the worker alike."""
    settings.SCHEDULER_AUTO_APPROVE_NODES = True
    settings.SCHEDULER_NODE_TIMEOUT_S = 4
    settings.SCHEDULER_HEARTBEAT_INTERVAL_S = 1
    return settings


@pytest.fixture
def celery_worker(live_server: Any, live_settings: Any, tmp_path: Path) -> Iterator[None]:
    if connection.vendor != "postgresql":
        pytest.skip("the worker shares the test database: PostgreSQL only")
    from config.celery import app

    app.control.purge()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "SCHEDULER_AUTO_APPROVE_NODES": "true",
        "SCHEDULER_NODE_TIMEOUT_S": "4",
        "SCHEDULER_HEARTBEAT_INTERVAL_S": "1",
        "SCHEDULER_SETTLEMENT_INTERVAL_S": "1",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # The worker's beat flushes buffered heartbeats when the test turns write-behind on.
        "AGENT_HEARTBEAT_WRITE_BEHIND": str(live_settings.AGENT_HEARTBEAT_WRITE_BEHIND).lower(),
        "AGENT_HEARTBEAT_FLUSH_S": "0.5",
    }
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115  closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat",
         "-Q", "placement,settlement,default", "-P", "threads", "-c", "4",
         "--loglevel", "INFO", "-s", str(tmp_path / "beat-schedule")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_until(lambda: "ready" in (tmp_path / "worker.log").read_text(), 60,
                   "the Celery worker to start")
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        app.control.purge()


@pytest.fixture
def start_agent(
    live_server: Any, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(provider_key: str, *, nodes: int = 1, gpus: int = 8, prefix: str = "sim",
              gpu_class: str = "H100-80GB",
              installed: Path | None = None) -> subprocess.Popen[bytes]:
        """`installed`: the `suanli-agent` command of an installed agent, run with none of
        this checkout on its path (by default this checkout's agent runs)."""
        log = open(tmp_path / f"agent-{prefix}.log", "w")  # noqa: SIM115  lives with the process
        command = [sys.executable, "-m", "suanli_agent"] if installed is None else [str(installed)]
        env = None
        if installed is not None:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.Popen(
            [*command, "--server", live_server.url,
             "--simulate", str(nodes), "--gpu-class", gpu_class, "--gpus", str(gpus),
             "--provider-key", provider_key, "--name-prefix", prefix, "--heartbeat-s", "1",
             "--usage-interval-s", "1"],
            cwd=ROOT if installed is None else tmp_path, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
