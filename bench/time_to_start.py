"""Time to start: a job submitted through the API -> its node's "started" report (the first
usage report of its run), with a simulated fleet on the agents' server.

10,000 simulated nodes (1,000 with --quick), a light asyncio simulator in a process of its
own, talk to gunicorn with uvicorn workers on config.asgi (as `docker/compose.yaml`'s
`agents` service runs); a real Celery worker places jobs as each submission asks after its
commit; heartbeats are kept in Redis and flushed every second, as the beat does. Jobs are
submitted at a steady rate. Two phases in the same run:

- push: every node holds a lease wait (`POST agent/lease/?wait=30`) and beats every 10 s;
- anchor: the same fleet without the push, reading its lease when a 10 s beat says it is
  due (the hints), as before the push existed.

Goal: p99 <= 1 s with the push. Without --quick, wrk sends heartbeats from other nodes'
tokens beside the push phase, as the heartbeat benchmark does, and its rate is printed.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench._machine import cpu_share
from bench._scratch import (
    AGENTS_KEEP_ALIVE,
    ROOT,
    SERVING_ENV,
    scratch_database,
    server_answering,
    server_url,
    use_database,
)

BEAT_EVERY_S = 10.0
WAIT_S = 30
HEARTBEAT = "/api/v1/agent/heartbeat/"
LEASE = "/api/v1/agent/lease/"
BEAT = json.dumps({"free_gpus": 8, "busy_gpus": 0, "utilization": 0.0,
                   "agent_version": "bench"}).encode()


# -- the simulator (its own process) ---------------------------------------------------


class _Http:
    """HTTP/1.1 on one kept connection, the least an idle agent can cost its client."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, token: str, body: bytes = b"{}") -> tuple[int, dict]:
        for attempt in (1, 2):
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host,
                                                                             self.port)
                assert self.reader is not None
                self.writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Node "
                    f"{token}\r\nContent-Type: application/json\r\nContent-Length: "
                    f"{len(body)}\r\n\r\n".encode() + body)
                await self.writer.drain()
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                payload = await self.reader.readexactly(length) if length else b"{}"
                return status, json.loads(payload)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                if self.writer is not None:
                    self.writer.close()
                self.reader = self.writer = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


async def _node(token: str, host: str, port: int, push: bool, started: dict[int, float],
                stop: asyncio.Event) -> None:
    beats, waits = _Http(host, port), _Http(host, port)
    seen: set[int] = set()

    async def on_lease(answer: dict) -> None:
        for item in answer.get("assignments") or []:
            if item["id"] not in seen:
                seen.add(item["id"])
                await beats.post(f"/api/v1/agent/assignments/{item['id']}/usage/", token,
                                 b'{"seq": 1, "gpu_seconds": 0, "ai_tokens": 0}')
                started[item["id"]] = time.time()

    async def beat_loop() -> None:
        await asyncio.sleep(random.uniform(0, BEAT_EVERY_S))
        while not stop.is_set():
            try:
                status, answer = await beats.post(HEARTBEAT, token, BEAT)
                if not push and status == 200 and answer.get("lease_due", True):
                    status, lease = await beats.post(LEASE, token)
                    if status == 200:
                        await on_lease(lease)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                pass
            await asyncio.sleep(BEAT_EVERY_S)

    async def wait_loop() -> None:
        await asyncio.sleep(random.uniform(0, 2))
        while not stop.is_set():
            try:
                status, answer = await waits.post(f"{LEASE}?wait={WAIT_S}", token)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                await asyncio.sleep(1)
                continue
            if status == 200 and answer.get("changed"):
                await on_lease(answer)
            elif status != 200:
                await asyncio.sleep(1)

    await asyncio.gather(beat_loop(), *([wait_loop()] if push else []))


def simulate(url: str, tokens_file: str, push: bool, out: str) -> None:
    """Run the fleet until SIGTERM, then write {assignment id: started at} to `out`."""
    tokens = Path(tokens_file).read_text().split()
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    started: dict[int, float] = {}

    async def run() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        tasks = [asyncio.ensure_future(_node(t, host, port, push, started, stop))
                 for t in tokens]
        Path(out + ".ready").write_text("1")
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    Path(out).write_text(json.dumps(started))


# -- the run -----------------------------------------------------------------------------


def _phase(*, url: str, tokens: list[str], push: bool, api_key: str, jobs: int,
           rate: float, tmp: str, beside: list[str] | None) -> dict:
    from scheduler.models import Assignment

    tokens_file = f"{tmp}/tokens-{push}"
    Path(tokens_file).write_text("\n".join(tokens))
    out = f"{tmp}/started-{push}.json"
    sim = subprocess.Popen([sys.executable, "-m", "bench.time_to_start", "--simulate", url,
                            tokens_file, "push" if push else "hints", out], cwd=ROOT)
    wrk = None
    try:
        while not Path(out + ".ready").exists():
            time.sleep(0.1)
        time.sleep(WAIT_S / 10 if push else BEAT_EVERY_S)  # every node beating (and waiting)
        if beside:
            wrk = _beside_load(url, beside, tmp)
        submitted: dict[int, float] = {}
        with httpx.Client(base_url=url, headers={"Authorization": f"Api-Key {api_key}"},
                          timeout=30) as http, cpu_share() as share:
            start = time.monotonic()
            for i in range(jobs):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                at = time.time()
                response = http.post("/api/v1/jobs/", json={
                    "spec": {"simulate": {"seconds": 3600}}, "gpu_class": "H100-80GB",
                    "gpu_count": 1, "max_duration_s": 3600})
                response.raise_for_status()
                submitted[response.json()["id"]] = at
            # Each job started, or the anchor's longest path (a beat, then a lease) is over.
            deadline = time.monotonic() + BEAT_EVERY_S * 2 + 10
            while time.monotonic() < deadline and Assignment.objects.filter(
                    job_id__in=submitted, started_at__isnull=True).exists():
                time.sleep(0.5)
    finally:
        beats_per_s = _beside_done(wrk) if wrk is not None else None
        sim.send_signal(signal.SIGTERM)
        sim.wait(60)
    started = {int(k): v for k, v in json.loads(Path(out).read_text()).items()}
    job_of = dict(Assignment.objects.filter(id__in=started).values_list("id", "job_id"))
    latencies = sorted(started[a] - submitted[j] for a, j in job_of.items() if j in submitted)
    missing = len(submitted) - len(latencies)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"jobs": len(submitted), "started": len(latencies), "not_started": missing,
            "p50_s": round(q[49], 3), "p99_s": round(q[98], 3),
            "max_s": round(latencies[-1], 3) if latencies else None,
            "beside_beats_per_s": beats_per_s, "cpu_steal": str(share)}


def _beside_load(url: str, tokens: list[str], tmp: str) -> subprocess.Popen:
    from bench.agent_api import WRK_SCRIPT

    tokens_file = f"{tmp}/beside-tokens"
    Path(tokens_file).write_text("\n".join(tokens) + "\n")
    script = f"{tmp}/beside.lua"
    Path(script).write_text(WRK_SCRIPT % {"tokens": tokens_file, "path": HEARTBEAT,
                                          "body": BEAT.decode()})
    return subprocess.Popen(["wrk", "-t1", "-c32", "-d600s", "-s", script, url + HEARTBEAT],
                            stdout=subprocess.PIPE, text=True)


def _beside_done(wrk: subprocess.Popen) -> float | None:
    import re

    wrk.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
    out, _ = wrk.communicate(timeout=30)
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(found.group(1)) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--simulate", nargs=4, metavar=("URL", "TOKENS", "MODE", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.simulate:
        url, tokens_file, mode, out = args.simulate
        simulate(url, tokens_file, mode == "push", out)
        return
    if not shutil.which("wrk") and not args.quick:
        sys.exit("bench.time_to_start needs wrk for the heartbeat load beside it "
                 "(apt-get install wrk)")
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    fleet, jobs, rate = (1_000, 300, 30.0) if args.quick else (10_000, 2_000, 40.0)
    name = urlsplit(server_url()).path.strip("/") or "suanli"
    with scratch_database(f"{name}_bench_start") as db_url:
        use_database(db_url)
        from django.conf import settings
        from django.db import connections

        from banking.services.customers import api_key_issue, organization_create
        from banking.services.ledger import grant_post
        from bench.agent_api import Flusher, _free_port, _make_nodes
        from config.celery import app

        if not settings.REDIS_URL:
            sys.exit("bench.time_to_start needs REDIS_URL (the push and the broker)")
        settings.AGENT_HEARTBEAT_WRITE_BEHIND = True
        tokens = _make_nodes(fleet + (2_000 if not args.quick else 0))
        fleet_tokens, beside = tokens[:fleet], tokens[fleet:] or None
        buyer = organization_create(name="bench-buyer")
        grant_post(organization_id=buyer.pk, amount=10**15, reason="bench")
        api_key = api_key_issue(organization_id=buyer.pk).secret
        app.control.purge()
        connections.close_all()
        port = _free_port()
        env = {**os.environ, **SERVING_ENV, "DATABASE_URL": db_url, "DJANGO_DEBUG": "false",
               "LOG_LEVEL": "WARNING", "AGENT_RATE_LIMIT": "100000/min",
               "API_RATE_LIMIT": "100000/min", "DATABASE_CONN_MAX_AGE": "60",
               "AGENT_HEARTBEAT_WRITE_BEHIND": "true", "SCHEDULER_NODE_TIMEOUT_S": "120",
               "CELERY_TASK_ALWAYS_EAGER": "false"}
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.asgi:application", "-b",
             f"127.0.0.1:{port}", "-w", str(os.cpu_count() or 2), "-k",
             "uvicorn_worker.UvicornWorker", "--log-level", "warning",
             "--backlog", "4096", *AGENTS_KEEP_ALIVE], cwd=ROOT, env=env,
            start_new_session=True)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "placement",
             "-P", "threads", "-c", "2", "--loglevel", "WARNING"],
            cwd=ROOT, env=env, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        flusher = Flusher(settings.AGENT_HEARTBEAT_FLUSH_S)
        flusher.start()
        tmp = tempfile.mkdtemp()
        try:
            server_answering(url)
            push = _phase(url=url, tokens=fleet_tokens, push=True, api_key=api_key,
                          jobs=jobs, rate=rate, tmp=tmp, beside=beside)
            anchor = _phase(url=url, tokens=fleet_tokens, push=False, api_key=api_key,
                            jobs=jobs, rate=rate, tmp=tmp, beside=None)
        finally:
            flusher.stop()
            for proc in (server, worker):
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            shutil.rmtree(tmp, ignore_errors=True)
            connections.close_all()
    print(f"fleet {fleet} simulated nodes, {jobs} jobs at {rate:g}/s, gunicorn with "
          f"{os.cpu_count()} uvicorn workers, a Celery placement worker")
    print(f"push:   p50 {push['p50_s']} s, p99 {push['p99_s']} s, max {push['max_s']} s "
          f"({push['started']}/{push['jobs']} started; cpu steal {push['cpu_steal']})"
          + (f"; heartbeats beside: {push['beside_beats_per_s']:.0f}/s"
             if push["beside_beats_per_s"] else ""))
    print(f"anchor: p50 {anchor['p50_s']} s, p99 {anchor['p99_s']} s, max {anchor['max_s']} s "
          f"({anchor['started']}/{anchor['jobs']} started; hints and {BEAT_EVERY_S:g} s beats)")
    goal = push["p99_s"] <= 1.0 and push["not_started"] == 0
    print(json.dumps({"bench": "time_to_start", "fleet": fleet, "jobs": jobs, "push": push,
                      "anchor": anchor, "goal_p99_s": 1.0, "goal_met": goal}))


if __name__ == "__main__":
    main()
