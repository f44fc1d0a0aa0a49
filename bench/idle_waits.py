"""Idle lease waits cost a heartbeat nothing: one agents' server worker (gunicorn with one
uvicorn worker on config.asgi, write-behind heartbeats on Redis), heartbeats driven by wrk
from other nodes' tokens, its p99 measured with and without 1,000 lease waits
(`POST agent/lease/?wait=60`, re-armed when answered) held open on that worker by a
client process of their own.

The phases alternate (without, with, without, with) so that a drift of the machine's load
falls on both; the figure is the median p99 with the waits over the median without.
Goal: within 10 % (ratio <= 1.10). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

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

WAITS = 1_000
BEATERS = 200
PHASE_S = 10
LEASE = "/api/v1/agent/lease/"


def hold(url: str, tokens_file: str, ready: str) -> None:
    """Hold one lease wait per token open until SIGTERM, re-armed when answered."""
    tokens = Path(tokens_file).read_text().split()
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    held = 0
    answered: dict[str, int] = {}  # status -> answers while held: an idle wait has none

    async def wait_forever(token: str, stop: asyncio.Event) -> None:
        nonlocal held
        reader, writer = await asyncio.open_connection(host, port)
        request = (f"POST {LEASE}?wait=60 HTTP/1.1\r\nHost: {host}\r\nAuthorization: Node "
                   f"{token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"
                   "{}").encode()
        counted = False
        while not stop.is_set():
            writer.write(request)
            await writer.drain()
            if not counted:
                held, counted = held + 1, True
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            status = head.split(b" ", 2)[1].decode()
            if held >= len(tokens):
                answered[status] = answered.get(status, 0) + 1
            if status != "200":
                await asyncio.sleep(1)

    async def run() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        tasks = [asyncio.ensure_future(wait_forever(t, stop)) for t in tokens]
        while held < len(tokens):
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the last requests reach the server
        Path(ready).write_text(str(held))
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        Path(ready + ".answered").write_text(json.dumps(answered))

    asyncio.run(run())


def _waits_open(url: str, tokens: list[str], tmp: str) -> tuple[subprocess.Popen, float]:
    """The holder process with every wait registered by the server (each registration
    is published on the lease channel, which this counts), and the seconds that took."""
    import redis
    from django.conf import settings

    from scheduler.services.lease_hints import LEASE_CHANGED_CHANNEL, WAIT_PREFIX

    tokens_file, ready = f"{tmp}/wait-tokens", f"{tmp}/waits-ready"
    Path(tokens_file).write_text("\n".join(tokens))
    Path(ready).unlink(missing_ok=True)
    channel = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    channel.subscribe(LEASE_CHANGED_CHANNEL)
    started = time.monotonic()
    holder = subprocess.Popen([sys.executable, "-m", "bench.idle_waits", "--hold", url,
                               tokens_file, ready], cwd=ROOT, start_new_session=True)
    registered = 0
    prefix = WAIT_PREFIX.encode()
    try:
        while registered < len(tokens):
            if holder.poll() is not None or time.monotonic() - started > 120:
                raise SystemExit("bench.idle_waits: the waits could not be opened")
            message = channel.get_message(timeout=1.0)
            if message and message["type"] == "message" and message["data"].startswith(prefix):
                registered += 1
    finally:
        channel.close()
    took = time.monotonic() - started
    while not Path(ready).exists():
        time.sleep(0.1)
    return holder, took


def _waits_close(holder: subprocess.Popen, tmp: str) -> dict[str, int]:
    """Close the waits; what the server answered them while they were held."""
    os.killpg(holder.pid, signal.SIGTERM)
    holder.wait(30)
    time.sleep(1.0)  # the server notices the hang-ups
    answered: dict[str, int] = json.loads(Path(f"{tmp}/waits-ready.answered").read_text())
    return answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    parser.add_argument("--hold", nargs=3, metavar=("URL", "TOKENS", "READY"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold:
        hold(*args.hold)
        return
    if not shutil.which("wrk"):
        sys.exit("bench.idle_waits needs wrk for the heartbeat load (apt-get install wrk)")
    phase_s = 5 if args.quick else PHASE_S
    name = urlsplit(server_url()).path.strip("/") or "suanli"
    with scratch_database(f"{name}_bench_idle_waits") as db_url:
        use_database(db_url)
        from django.conf import settings
        from django.db import connections

        from bench.agent_api import HEARTBEAT, Flusher, _first_beats, _free_port, _make_nodes, _wrk

        if not settings.REDIS_URL:
            sys.exit("bench.idle_waits needs REDIS_URL (the push and the heartbeat buffer)")
        settings.AGENT_HEARTBEAT_WRITE_BEHIND = True
        tokens = _make_nodes(WAITS + BEATERS)
        waiters, beaters = tokens[:WAITS], tokens[WAITS:]
        connections.close_all()
        port = _free_port()
        env = {**os.environ, **SERVING_ENV, "DATABASE_URL": db_url, "DJANGO_DEBUG": "false",
               "LOG_LEVEL": "WARNING", "AGENT_RATE_LIMIT": "1000000/min",
               "AGENT_HEARTBEAT_WRITE_BEHIND": "true", "AGENT_LEASE_WAIT_MAX_S": "60",
               "SCHEDULER_NODE_TIMEOUT_S": "600", "DATABASE_CONN_MAX_AGE": "60"}
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.asgi:application", "-b",
             f"127.0.0.1:{port}", "-w", "1", "-k", "uvicorn_worker.UvicornWorker",
             "--log-level", "warning", "--backlog", "4096", *AGENTS_KEEP_ALIVE],
            cwd=ROOT, env=env, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        flusher = Flusher(settings.AGENT_HEARTBEAT_FLUSH_S)
        flusher.start()
        tmp = tempfile.mkdtemp()
        without: list[float] = []
        with_waits: list[float] = []
        rates: dict[str, list[float]] = {"without": [], "with": []}
        answered: dict[str, int] = {}
        opened: list[float] = []
        try:
            server_answering(url)
            _first_beats(url, tokens)  # every token known to the buffer, as in a fleet
            beat_tokens = f"{tmp}/beat-tokens"
            Path(beat_tokens).write_text("\n".join(beaters))
            _wrk(url, HEARTBEAT, 3, beat_tokens, 8)  # warm: plans, connections
            with cpu_share() as share:
                for _round in range(2):
                    rate, p99 = _wrk(url, HEARTBEAT, phase_s, beat_tokens, 8)
                    without.append(p99)
                    rates["without"].append(rate)
                    holder, took = _waits_open(url, waiters, tmp)
                    opened.append(took)
                    try:
                        rate, p99 = _wrk(url, HEARTBEAT, phase_s, beat_tokens, 8)
                        with_waits.append(p99)
                        rates["with"].append(rate)
                    finally:
                        for status, n in _waits_close(holder, tmp).items():
                            answered[status] = answered.get(status, 0) + n
        finally:
            flusher.stop()
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
            shutil.rmtree(tmp, ignore_errors=True)
            connections.close_all()
    base, loaded = statistics.median(without), statistics.median(with_waits)
    ratio = loaded / base if base else float("inf")
    print(f"one uvicorn worker; heartbeats by wrk (8 connections, {BEATERS} tokens), "
          f"{phase_s} s phases, alternated ({share})")
    print(f"without waits: p99 {', '.join(f'{p:.2f}' for p in without)} ms, "
          f"{statistics.median(rates['without']):.0f} beats/s (anchor)")
    print(f"with {WAITS:,} idle waits: p99 {', '.join(f'{p:.2f}' for p in with_waits)} ms, "
          f"{statistics.median(rates['with']):.0f} beats/s")
    print(f"{WAITS:,} waits registered by the server in "
          f"{', '.join(f'{t:.1f}' for t in opened)} s")
    print(f"waits answered while held (an idle wait is not): {answered or 'none'}")
    print(f"p99 with / without: {ratio:.3f} (goal <= 1.10)")
    print(json.dumps({"bench": "idle_waits", "waits": WAITS, "phase_s": phase_s,
                      "p99_ms_without": without, "p99_ms_with": with_waits,
                      "beats_per_s_without": rates["without"],
                      "beats_per_s_with": rates["with"], "waits_answered": answered,
                      "p99_ratio": round(ratio, 3),
                      "goal_ratio": 1.10, "goal_met": ratio <= 1.10}))


if __name__ == "__main__":
    main()
