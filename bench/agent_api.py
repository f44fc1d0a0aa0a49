"""Agent API under load: heartbeats from 10,000 node tokens against gunicorn on this
machine, load from wrk in a separate process. Without wrk it refuses to run: a load
generator in Python measures itself, not the server (a fraction of the server's rate).
Heartbeats are write-behind as in production with Redis (the flush runs in this process,
as the Celery beat would run it); `--synchronous` writes each beat as it arrives.

Prints req/s (goal >= 2,000) and p99 latency (goal <= 50 ms) of heartbeats and, as the
anchor in the same run against the same server, of GET /healthz; then what the same server
answers of lease reads, against what the fleet asks with and without lease hints.
Last line: JSON.
"""

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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
from suanli_agent.config import AgentConfig

# What suanli_agent sends from a node with 8 GPUs, 4 of them busy with two jobs.
BEAT = {"free_gpus": 4, "busy_gpus": 4, "utilization": 0.5, "agent_version": "0.1.0",
        "gpus": [{"index": i, "name": "NVIDIA H100 80GB HBM3", "memory_mb": 81559}
                 for i in range(8)],
        "running": [101, 102]}
ASGI_WORKER = "uvicorn_worker.UvicornWorker"
HEARTBEAT, LEASE = "/api/v1/agent/heartbeat/", "/api/v1/agent/lease/"
CONNECTIONS = 32  # eight waiting per worker: every worker always has a request ready

WRK_SCRIPT = """
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local i = 0
local threads = 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end
function init(args)
  -- each thread walks the tokens from its own place, so all of them beat
  i = (offset or 0) * 4999
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%(body)s'
request = function()
  i = i %% #tokens + 1
  wrk.headers["Authorization"] = "Node " .. tokens[i]
  return wrk.format(nil, "%(path)s")
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%f\\n", summary.requests, summary.errors.status,
                         latency:percentile(99)))
end
"""


def _body(path: str) -> dict:
    return BEAT if path == HEARTBEAT else {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_nodes(n: int) -> list[str]:
    from django.utils import timezone

    from banking.services.customers import organization_create
    from scheduler.models import GpuClass, Node

    provider = organization_create(name="bench-fleet", is_buyer=False, is_provider=True)
    cls = GpuClass.objects.get(name="H100-80GB")
    tokens, rows = [], []
    for i in range(n):
        prefix = f"{i:012x}"
        token = f"nt_{prefix}_{secrets.token_urlsafe(16)}"
        tokens.append(token)
        rows.append(Node(provider=provider, name=f"fleet-{i}", gpu_class=cls, gpu_count=8,
                         free_gpus=8, vram_gb=80, region="eu", status=Node.Status.ONLINE,
                         is_approved=True, last_heartbeat_at=timezone.now(),
                         token_prefix=prefix,
                         token_hash=hashlib.sha256(token.encode()).hexdigest()))
    Node.objects.bulk_create(rows, batch_size=2000)
    return tokens


def _wrk(url: str, path: str, seconds: int, tokens_file: str | None,
         connections: int) -> tuple[float, float]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if tokens_file:
            script.write(WRK_SCRIPT % {"tokens": tokens_file, "path": path,
                                       "body": json.dumps(_body(path))})
        else:
            script.write('done = function(s, l, r) io.write(string.format('
                         '"RESULT %d %d %f\\n", s.requests, s.errors.status, '
                         'l:percentile(99))) end\n')
    out = subprocess.run([*args, "-s", script.name, url + path], capture_output=True,
                         text=True, check=True).stdout
    requests, errors, p99_us = re.search(r"RESULT (\d+) (\d+) ([\d.]+)", out).groups()  # type: ignore[union-attr]
    if int(errors):
        print(f"  ({errors} non-2xx responses)")
    return int(requests) / seconds, float(p99_us) / 1000


def _first_beats(url: str, tokens: list[str]) -> None:
    """Each token's first beat, once: it goes to PostgreSQL at once (and makes the token
    known to the write-behind path), which a steady fleet has long done."""
    import asyncio

    async def run() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30,
                                     limits=httpx.Limits(max_connections=16)) as c:
            async def worker(k: int) -> None:
                for token in tokens[k::16]:
                    await c.post("/api/v1/agent/heartbeat/", json=BEAT,
                                 headers={"Authorization": f"Node {token}"})
            await asyncio.gather(*(worker(k) for k in range(16)))

    asyncio.run(run())


def _tokens_known(tokens: list[str]) -> int:
    """How many of this run's tokens the write-behind path knows (their first beat went
    to PostgreSQL). Only these tokens are counted: Redis may hold others, left by earlier
    runs or tests, that would end the warm-up too soon."""
    import redis
    from django.conf import settings as django_settings

    from scheduler.services.heartbeat_buffer import _token_key

    client = redis.Redis.from_url(django_settings.REDIS_URL)
    pipe = client.pipeline(transaction=False)
    for token in tokens:
        pipe.exists(_token_key(hashlib.sha256(token.encode()).hexdigest()))
    return sum(pipe.execute())


class Flusher(threading.Thread):
    """What the Celery beat does in production: heartbeats_flush every
    AGENT_HEARTBEAT_FLUSH_S, here in this process, so its cost is on this machine too."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.stopping = threading.Event()
        self.beats: list[int] = []
        self.seconds: list[float] = []

    def flush(self) -> None:
        from scheduler.services.heartbeat_buffer import heartbeats_flush

        result = heartbeats_flush()
        if result.taken:
            self.beats.append(result.taken)
            self.seconds.append(result.seconds)

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stopping.wait(self.interval):
                self.flush()
            self.flush()
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--workers", type=int, default=0,
                        help="default: 1 per core (uvicorn), 2 per core (sync, gthread)")
    parser.add_argument("--worker-class", default=ASGI_WORKER,
                        help=f"{ASGI_WORKER} (config.asgi, as deployed) or a WSGI one "
                             "(config.wsgi): sync, gthread")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--synchronous", action="store_true",
                        help="every beat written as it arrives (no write-behind)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench.agent_api needs wrk to drive the load (apt-get install wrk; "
                 "`make bench` installs it where apt is available): a Python load generator "
                 "would measure itself, not the server")
    seconds = 8 if args.quick else 20
    # --quick keeps under a minute: each token's first beat is a write of its own.
    fleet = 2_000 if args.quick else 10_000
    write_behind = not args.synchronous
    # Named after DATABASE_URL's database: two people benchmarking on one server (each
    # with their own DATABASE_URL) never drop each other's scratch database.
    name = urlsplit(server_url()).path.strip("/") or "suanli"
    with scratch_database(f"{name}_bench_agent") as db_url:
        use_database(db_url)
        from django.conf import settings as django_settings
        from django.db import connections
        from django.utils import timezone

        from scheduler.models import Node

        if write_behind and not django_settings.REDIS_URL:
            sys.exit("write-behind needs REDIS_URL (or run with --synchronous)")
        django_settings.AGENT_HEARTBEAT_WRITE_BEHIND = write_behind
        tokens = _make_nodes(fleet)
        connections.close_all()
        port = _free_port()
        env = {**os.environ, **SERVING_ENV, "DATABASE_URL": db_url, "DJANGO_DEBUG": "false",
               "LOG_LEVEL": "WARNING", "AGENT_RATE_LIMIT": "100000/min",
               "DATABASE_CONN_MAX_AGE": "60",
               "AGENT_HEARTBEAT_WRITE_BEHIND": "true" if write_behind else "false"}
        asgi = args.worker_class == ASGI_WORKER
        # The fast path wraps the agents' server only: a WSGI worker class measures the
        # DRF views behind Django's request cycle. An event loop keeps its core busy by
        # itself; a synchronous worker waits on Redis.
        workers = str(args.workers or (os.cpu_count() or 2) * (1 if asgi else 2))
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn",
             "config.asgi:application" if asgi else "config.wsgi:application", "-b",
             f"127.0.0.1:{port}", "-w", workers, "-k", args.worker_class,
             "--threads", str(args.threads), "--log-level", "warning",
             *(AGENTS_KEEP_ALIVE if asgi else [])],
            cwd=ROOT, env=env, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        flusher = Flusher(django_settings.AGENT_HEARTBEAT_FLUSH_S)
        try:
            server_answering(url)
            tool = "wrk"
            with tempfile.NamedTemporaryFile("w", delete=False) as f:
                f.write("\n".join(tokens) + "\n")

            def load(path: str, duration: int, with_tokens: bool) -> tuple[float, float]:
                return _wrk(url, path, duration, f.name if with_tokens else None,
                            args.connections)

            anchor_rps, anchor_p99 = load("/healthz", seconds, False)
            flusher.start()
            # Every agent's first beat proves its token against PostgreSQL; a fleet beats
            # all day, so the measurement is of the steady state after that.
            warm_started = time.monotonic()
            _first_beats(url, tokens)
            known = _tokens_known(tokens) if write_behind else len(tokens)
            warm_s = time.monotonic() - warm_started
            load(HEARTBEAT, 3, True)
            started = timezone.now()
            with cpu_share() as share:
                rps, p99 = load(HEARTBEAT, seconds, True)
            lease_rps, lease_p99 = load(LEASE, seconds, True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
            if flusher.is_alive():
                flusher.stop()
            Path(f.name).unlink(missing_ok=True)
        reached = Node.objects.filter(last_heartbeat_at__gte=started).count()
        connections.close_all()
    mode = "write-behind" if write_behind else "synchronous"
    flush_p99 = sorted(flusher.seconds)[int(0.99 * (len(flusher.seconds) - 1))] * 1000 \
        if flusher.seconds else 0.0
    print(f"load: {tool}, {args.connections} connections, {seconds}s, gunicorn with {workers} "
          f"{args.worker_class} workers x {args.threads} threads; heartbeats {mode}")
    if write_behind:
        print(f"warm-up: every token's first beat, written at once: {known:,} of "
              f"{len(tokens):,} tokens known after {warm_s:.0f} s")
    print(f"anchor: GET /healthz {anchor_rps:,.0f} req/s, p99 {anchor_p99:.1f} ms")
    print(f"heartbeats from {fleet:,} node tokens: {rps:,.0f} req/s (goal >= 2,000), "
          f"p99 {p99:.1f} ms (goal <= 50 ms); {rps / anchor_rps:.2f} x the anchor; {share}")
    if flusher.beats:
        print(f"flushes: {len(flusher.beats)}, {sum(flusher.beats) / len(flusher.beats):,.0f} "
              f"beats each on average, p99 {flush_p99:.1f} ms each")
    print(f"nodes whose beats during the run reached PostgreSQL: {reached:,} of {fleet:,}")
    # What a fleet of this size asks for: a lease after every beat without hints; with
    # them (write-behind), when its lease changed and at least once a minute.
    interval = django_settings.SCHEDULER_HEARTBEAT_INTERVAL_S
    asked, hinted = fleet / interval, fleet / AgentConfig.lease_at_least_s
    print(f"leases (no work on the nodes) from {fleet:,} node tokens: {lease_rps:,.0f} req/s, "
          f"p99 {lease_p99:.1f} ms; the fleet asks {asked:,.0f}/s when it reads its lease "
          f"after every {interval} s beat, {hinted:,.0f}/s plus one per change with hints")
    print(json.dumps({"heartbeat_rps": round(rps), "heartbeat_p99_ms": round(p99, 1),
                      "healthz_rps": round(anchor_rps), "healthz_p99_ms": round(anchor_p99, 1),
                      "ratio": round(rps / anchor_rps, 3), "mode": mode,
                      "flush_p99_ms": round(flush_p99, 1), "nodes_reached": reached,
                      "connections": args.connections, "load_tool": tool,
                      "node_tokens": fleet, "cpu_stolen": round(share.stolen, 3),
                      "lease_rps": round(lease_rps), "lease_p99_ms": round(lease_p99, 1),
                      "lease_demand_every_beat": round(asked),
                      "lease_demand_hinted_floor": round(hinted)}))


if __name__ == "__main__":
    main()
