"""Log ingest under load: 1,000 simulated nodes each streaming its running job's log at
once, every node posting a chunk every 2 seconds (what suanli_agent does) to the
agents' server (gunicorn with uvicorn workers, config.asgi) on this machine, log bytes to
the filesystem storage, the chunk index in PostgreSQL. Load from a separate process.

Prints ingest MB/s (goal >= 10 MB/s: 10,000 nodes at 1 KiB/s) and the p99 of a chunk's
POST (goal <= 100 ms), against the anchor measured in the same run: writing the same
chunks to files (one file per chunk, as the storage does) from one process. Last line:
JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
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

INTERVAL_S = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fleet(n: int) -> list[tuple[str, int]]:
    """n online nodes, each with one running assignment: (node token, assignment id)."""
    from django.utils import timezone

    from banking.services.customers import organization_create
    from scheduler.models import Assignment, GpuClass, Job, Node

    run = secrets.token_hex(3)  # names of their own: a rerun on the same database works
    provider = organization_create(name=f"bench-logs-fleet-{run}", is_buyer=False,
                                   is_provider=True)
    buyer = organization_create(name=f"bench-logs-buyer-{run}", is_buyer=True,
                                is_provider=False)
    cls = GpuClass.objects.get(name="H100-80GB")
    now = timezone.now()
    tokens, nodes = [], []
    for i in range(n):
        prefix = secrets.token_hex(6)
        token = f"nt_{prefix}_{secrets.token_urlsafe(16)}"
        tokens.append(token)
        nodes.append(Node(provider=provider, name=f"logs-{i}", gpu_class=cls, gpu_count=1,
                          free_gpus=0, vram_gb=80, region="eu", status=Node.Status.ONLINE,
                          is_approved=True, last_heartbeat_at=now, token_prefix=prefix,
                          token_hash=hashlib.sha256(token.encode()).hexdigest()))
    nodes = Node.objects.bulk_create(nodes, batch_size=2000)
    jobs = Job.objects.bulk_create(
        [Job(organization=buyer, spec={"command": "train"}, gpu_class=cls, gpu_count=1,
             max_duration_s=3600, rate_per_gpu_hour=cls.on_demand_rate, state=Job.State.RUNNING,
             node=node, attempts=1) for node in nodes], batch_size=2000)
    assignments = Assignment.objects.bulk_create(
        [Assignment(job=job, node=node, gpu_count=1, rate_per_gpu_hour=cls.on_demand_rate,
                    state=Assignment.State.RUNNING, lease_expires_at=now, started_at=now)
         for job, node in zip(jobs, nodes, strict=True)], batch_size=2000)
    return [(t, a.pk) for t, a in zip(tokens, assignments, strict=True)]


def _chunk(size: int, seed: int) -> bytes:
    line = f"O step {seed:06d} loss=0.{seed % 9973:04d} lr=3e-4 tokens/s=81234\n".encode()
    return (line * (size // len(line) + 1))[:size - 1] + b"\n"


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                token: str, data: bytes) -> tuple[int, bytes]:
    """One keep-alive HTTP/1.1 POST on the node's own connection: a plain client, so that
    the load process measures the server rather than a client library's pool."""
    writer.write(f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Node {token}\r\n"
                 f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}"
                 "\r\n\r\n".encode() + data)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length)


async def _load(url: str, fleet: list[tuple[str, int]], seconds: float,
                chunk_bytes: int) -> dict[str, float]:
    latencies: list[float] = []
    acked = 0
    errors = 0
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    deadline = time.monotonic() + seconds

    async def node(k: int, token: str, assignment_id: int) -> None:
        nonlocal acked, errors
        offset = 0
        # Nodes spread over the interval, as a real fleet's clocks are.
        await asyncio.sleep(INTERVAL_S * k / len(fleet))
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < deadline:
                started = time.monotonic()
                data = _chunk(chunk_bytes, k + offset)
                path = f"/api/v1/agent/assignments/{assignment_id}/logs/?offset={offset}"
                try:
                    status, body = await _post(reader, writer, path, token, data)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    status, body = 0, b""
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                elapsed = time.monotonic() - started
                latencies.append(elapsed)
                if status == 200:
                    offset = int(json.loads(body)["offset"])
                    acked += len(data)
                else:
                    errors += 1
                await asyncio.sleep(max(0.0, INTERVAL_S - elapsed))
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(node(k, t, a) for k, (t, a) in enumerate(fleet)))
    wall = time.monotonic() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else 0.0
    return {"bytes": acked, "seconds": wall, "posts": len(latencies), "errors": errors,
            "p99_ms": p99 * 1000}


def _anchor(chunks: int, chunk_bytes: int, nodes: int) -> float:
    """MB/s of writing the same chunks as files, one file per chunk."""
    root = Path(tempfile.mkdtemp(prefix="bench-logs-anchor-"))
    try:
        started = time.perf_counter()
        for i in range(chunks):
            folder = root / str(i % nodes)
            folder.mkdir(exist_ok=True)
            (folder / f"{i:016d}").write_bytes(_chunk(chunk_bytes, i))
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return chunks * chunk_bytes / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.logs")
    parser.add_argument("--quick", action="store_true", help="200 nodes for 10 s")
    parser.add_argument("--load-worker", help=argparse.SUPPRESS)
    parser.add_argument("--chunk-bytes", type=int, default=20 * 1024,
                        help="bytes per chunk (every 2 s a node): 20 KiB = 10 KiB/s a node")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    if args.load_worker:
        spec = json.loads(Path(args.load_worker).read_text())
        result = asyncio.run(_load(spec["url"], [tuple(x) for x in spec["fleet"]],
                                   spec["seconds"], spec["chunk_bytes"]))
        print(json.dumps(result))
        return
    nodes, seconds = (200, 10.0) if args.quick else (1_000, 30.0)
    name = urlsplit(server_url()).path.strip("/") or "suanli"
    storage = Path(tempfile.mkdtemp(prefix="bench-logs-objects-"))
    with scratch_database(f"{name}_bench_logs") as db_url:
        use_database(db_url)
        from django.db import connections

        fleet = _fleet(nodes)
        connections.close_all()
        port = _free_port()
        env = {**os.environ, **SERVING_ENV, "DATABASE_URL": db_url, "DJANGO_DEBUG": "false",
               "LOG_LEVEL": "WARNING", "AGENT_RATE_LIMIT": "100000/min",
               "DATABASE_CONN_MAX_AGE": "60", "OBJECT_STORAGE": "filesystem",
               "OBJECT_STORAGE_ROOT": str(storage)}
        workers = str(args.workers or os.cpu_count() or 2)
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.asgi:application", "-b",
             f"127.0.0.1:{port}", "-w", workers, "-k", "uvicorn_worker.UvicornWorker",
             "--log-level", "warning", *AGENTS_KEEP_ALIVE], cwd=ROOT, env=env,
            start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            server_answering(url)
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
                json.dump({"url": url, "fleet": fleet, "seconds": seconds,
                           "chunk_bytes": args.chunk_bytes}, spec)
            with cpu_share() as share:
                out = subprocess.run([sys.executable, "-m", "bench.logs", "--load-worker",
                                      spec.name], cwd=ROOT, capture_output=True, text=True,
                                     check=True, env=env)
            os.unlink(spec.name)
            result = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        stored = sum(p.stat().st_size for p in storage.rglob("*") if p.is_file())
        shutil.rmtree(storage, ignore_errors=True)
    mbps = result["bytes"] / result["seconds"] / 1e6
    chunks = int(result["posts"])
    anchor = _anchor(chunks, args.chunk_bytes, nodes)
    print(f"fleet: {nodes:,} nodes, one chunk of {args.chunk_bytes:,} bytes every "
          f"{INTERVAL_S:g} s each, {seconds:g} s; gunicorn with {workers} uvicorn workers; "
          f"{share}")
    print(f"anchor: the same {chunks:,} chunks written as files: {anchor:,.1f} MB/s")
    print(f"ingest: {mbps:,.2f} MB/s (goal >= 10 MB/s), chunk POST p99 "
          f"{result['p99_ms']:.1f} ms (goal <= 100 ms), {result['posts']:,} POSTs, "
          f"{result['errors']} errors; {mbps / anchor:.3f} x the anchor; "
          f"{stored:,} bytes in storage")
    print(json.dumps({"nodes": nodes, "seconds": seconds, "chunk_bytes": args.chunk_bytes,
                      "ingest_mb_s": round(mbps, 3), "p99_ms": round(result["p99_ms"], 1),
                      "posts": result["posts"], "errors": result["errors"],
                      "anchor_files_mb_s": round(anchor, 1),
                      "cpu_busy": round(share.busy, 3), "cpu_stolen": round(share.stolen, 3)}))


if __name__ == "__main__":
    main()
