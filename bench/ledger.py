"""Ledger throughput on this machine's PostgreSQL.

(a) anchor: pgbench's built-in tpcb-like transaction, 16 clients, on a scratch database;
(b) transfers/s through the posting service from 16 client processes between random
    wallets (goal >= 0.5 x (a));
(c) transfers/s through the batch form, batches of 1,000, every transfer crediting the
    same platform revenue account (goal >= 20,000/s): from one client, and from one client
    per core at once (the figure the goal is read on; batches lock their accounts only for
    their last step, so they overlap).
Last line: one JSON object of the figures.
"""

import argparse
import json
import multiprocessing as mp
import multiprocessing.synchronize
import os
import random
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from bench._machine import CpuShare, cpu_share
from bench._scratch import pg_binary, scratch_database, use_database

CLIENTS = 16
# Settlement batches run in Celery worker processes (by default one per core) at once;
# so do the bench's.
BATCH_CLIENTS = max(2, os.cpu_count() or 2)


def pgbench_tps(url: str, seconds: int, scale: int) -> float:
    parts = urlsplit(url)
    conn = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
            "-U", parts.username or "postgres"]
    db = parts.path.lstrip("/")
    subprocess.run([pg_binary("pgbench"), *conn, "-i", "-q", "-s", str(scale), db],
                   check=True, capture_output=True)
    out = subprocess.run(
        [pg_binary("pgbench"), *conn, "-c", str(CLIENTS), "-j", "2", "-T", str(seconds), db],
        check=True, capture_output=True, text=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    if match is None:
        match = re.search(r"tps = ([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def _setup_wallets(n: int) -> list[int]:
    from banking.models.ledger import AccountPurpose
    from banking.selectors import organization_account
    from banking.services.customers import organization_create
    from banking.services.ledger import grant_post

    wallets = []
    for i in range(n):
        org = organization_create(name=f"bench-{i}")
        grant_post(organization_id=org.pk, amount=10_000_000, reason="bench")
        wallets.append(organization_account(org.pk, AccountPurpose.WALLET).pk)
    return wallets


def _clients(target: Callable[..., None], clients: int, *args: object,
             first_seed: int = 0) -> list[Any]:
    """Run `target(*args, seed, ready, out)` in `clients` spawned processes, seeds
    first_seed, first_seed + 1, ...; they start together behind the `ready` barrier once
    each is connected. Returns what each put on `out`."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue[Any] = ctx.Queue()
    ready = ctx.Barrier(clients)
    procs = [ctx.Process(target=target, args=(*args, first_seed + i, ready, queue))
             for i in range(clients)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return results


def _as_a_server_process() -> None:
    """Postings are made in web and Celery worker processes, which freeze what they have
    loaded at start (config.wsgi, config.celery): here, full collections walking all of
    Django took a share of the CPU while the 16 posting processes ran
    (docs/performance.md)."""
    from config.celery import freeze_what_is_loaded

    freeze_what_is_loaded()


def _single_worker(url: str, wallets: list[int], seconds: float, seed: int,
                   ready: "mp.synchronize.Barrier", out: "mp.Queue[int]") -> None:
    use_database(url)
    from banking.models import Account
    from banking.models.ledger import TransferKind
    from banking.services.ledger import transfer_post

    rng = random.Random(seed)
    Account.objects.count()  # connected before the clock starts
    _as_a_server_process()
    ready.wait()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        a, b = rng.sample(wallets, 2)
        amount = rng.randint(1, 100)
        transfer_post(kind=TransferKind.TRANSFER, idempotency_key=f"s{seed}-{n}",
                      legs=[(a, -amount), (b, amount)])
        n += 1
    out.put(n)


def single_tps(url: str, wallets: list[int], seconds: float) -> float:
    return sum(_clients(_single_worker, CLIENTS, url, wallets, seconds)) / seconds


def _batch_worker(url: str, wallets: list[int], batches: int, size: int, run: str, seed: int,
                  ready: "mp.synchronize.Barrier",
                  out: "mp.Queue[tuple[float, float]]") -> None:
    use_database(url)
    from banking.models.ledger import AccountPurpose, TransferKind
    from banking.services.ledger import system_account, transfer_spec, transfers_post_batch

    revenue = system_account(AccountPurpose.PLATFORM_REVENUE).pk
    _as_a_server_process()
    rng = random.Random(seed)
    prepared = [
        [
            transfer_spec(kind=TransferKind.CAPTURE, idempotency_key=f"b{run}-{seed}-{b}-{i}",
                          legs=[(rng.choice(wallets), -3), (revenue, 3)])
            for i in range(size)
        ]
        for b in range(batches + 1)
    ]
    transfers_post_batch(prepared.pop())  # warm: connected, statements prepared
    ready.wait()
    started = time.monotonic()
    for specs in prepared:
        # Every key is new: a replayed batch would measure lookups, not postings.
        assert transfers_post_batch(specs).posted == size
    out.put((started, time.monotonic()))


def batch_tps(url: str, wallets: list[int], batches: int, clients: int,
              size: int = 1_000) -> float:
    """Transfers/s of `clients` processes posting `batches` batches each, all crediting
    the platform revenue account: from the first start to the last finish."""
    spans = _clients(_batch_worker, clients, url, wallets, batches, size, uuid.uuid4().hex)
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return clients * batches * size / elapsed


def _median_rounds(url: str, wallets: list[int], batches: int, clients: int,
                   rounds: int) -> tuple[float, CpuShare]:
    with cpu_share() as share:
        figures = sorted(batch_tps(url, wallets, batches, clients) for _ in range(rounds))
    return figures[len(figures) // 2], share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run, under a minute")
    args = parser.parse_args()
    seconds = 5 if args.quick else 20
    with scratch_database("suanli_bench_pgbench", migrate=False) as url, \
            cpu_share() as anchor_share:
        anchor = pgbench_tps(url, seconds, scale=CLIENTS)
    print(f"(a) pgbench tpcb-like, {CLIENTS} clients, {seconds}s: {anchor:,.0f} tps (anchor; "
          f"{anchor_share})")
    with scratch_database("suanli_bench_ledger") as url:
        use_database(url)
        from django.db import connections

        from banking.invariants import ledger_verify

        wallets = _setup_wallets(200)
        connections.close_all()
        with cpu_share() as single_share:
            single = single_tps(url, wallets, seconds)
        print(f"(b) posting service, {CLIENTS} processes, random wallets: {single:,.0f} "
              f"transfers/s = {single / anchor:.2f} x anchor (goal >= 0.50; {single_share})")
        batches = 5 if args.quick else 20
        rounds = 1 if args.quick else 3
        batch_tps(url, wallets, 5, clients=1)  # warm: the tables' first growth, autoanalyze
        batch_one, share_one = _median_rounds(url, wallets, batches, 1, rounds)
        print(f"(c) batch form, 1,000 per batch into one revenue account, 1 client: "
              f"{batch_one:,.0f} transfers/s (median of {rounds}; {share_one})")
        batch, share = _median_rounds(url, wallets, batches, BATCH_CLIENTS, rounds)
        print(f"(c) batch form, 1,000 per batch into one revenue account, {BATCH_CLIENTS} "
              f"clients at once: {batch:,.0f} transfers/s (goal >= 20,000; median of {rounds}; "
              f"{share})")
        violations = ledger_verify()
        print(f"invariants: {'ok' if not violations else violations[:3]}")
    print(json.dumps({
        "pgbench_tps": round(anchor, 1),
        "single_tps": round(single, 1),
        "batch_tps": round(batch, 1),
        "batch_tps_one_client": round(batch_one, 1),
        "ratio_single": round(single / anchor, 3),
        "invariants": "ok" if not violations else "broken",
        "cpu_stolen": {"anchor": round(anchor_share.stolen, 3),
                       "single": round(single_share.stolen, 3),
                       "batch": round(share.stolen, 3)},
    }))


if __name__ == "__main__":
    main()
