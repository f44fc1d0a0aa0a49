"""Lists and the ledger check at ten million entries.

A ledger of 10,000,000 entries (5,000,000 transfers) across 100,000 organizations,
written by COPY (not through the posting service) into a scratch database, checked once
by `verify_ledger --full`. Then:
(a) p99 of the statement page (first and deeper pages, by cursor), the jobs page and a
    transfer's detail through the API (the whole Django stack, API keys included; goals
    <= 20 ms), each against its anchor: a plain indexed SELECT of the same rows, timed in
    the same run; the statement also of one organization whose wallet holds as many
    entries again as a tenth of the ledger (`statement_large`);
(b) the incremental `verify_ledger` after 100,000 new transfers (goal <= 5 s), against
    the time of the `--full` run.
`--quick`: 1,000,000 entries across 10,000 organizations, 10,000 new transfers.
Last line: one JSON object of the figures.
"""

import argparse
import io
import json
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from bench._machine import cpu_share
from bench._scratch import SERVING_ENV, scratch_database, server_url, use_database

SAMPLED_ORGS = 40
JOBS_PER_ORG = 10
GRANT = 1_000_000
HASH = "0" * 64
LARGE_SHARE = 5


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def _timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()  # warm: plans, caches
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def _build(orgs: int, transfers: int) -> dict[str, Any]:
    """Organizations, accounts, transfers and entries by COPY; balances from the entries."""
    from django.db import connection

    from banking.models import Account, Entry, Organization
    from banking.models.ledger import ORGANIZATION_PURPOSES, AccountPurpose, TransferKind
    from core.sql_names import column, insert_into, table, value

    started = time.perf_counter()
    now = datetime.now(UTC)
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cur:
        cur.execute(
            f"INSERT INTO {insert_into(Organization, 'name', 'is_buyer', 'is_provider', 'is_approved', 'status', 'require_mfa', 'created_at', 'updated_at')} "  # noqa: E501
            f"SELECT 'scale-' || i, true, false, true, {value(Organization.Status.ACTIVE)}, "
            f"false, %s, %s FROM generate_series(1, %s) AS i", [now, now, orgs])
        floors = {AccountPurpose.DEBT: "NULL"}
        purposes = " UNION ALL ".join(
            f"SELECT {n} AS n, {value(p)} AS p, {floors.get(p, '0')}::bigint AS f"
            for n, p in enumerate(ORGANIZATION_PURPOSES))
        cur.execute(
            f"INSERT INTO {insert_into(Account, 'organization', 'purpose', 'balance', 'floor', 'created_at', 'updated_at')} "  # noqa: E501
            f"SELECT o.{column(Organization, 'id')}, p.p, 0, p.f, %s, %s "
            f"FROM {table(Organization)} o CROSS JOIN ({purposes}) p "
            f"ORDER BY o.{column(Organization, 'id')}, p.n", [now, now])
        cur.execute(
            f"SELECT {column(Account, 'id')} FROM {table(Account)} "
            f"WHERE {column(Account, 'purpose')} = {value(AccountPurpose.WALLET)} "
            f"AND {column(Account, 'organization')} IS NOT NULL "
            f"ORDER BY {column(Account, 'organization')}")
        wallets = [row[0] for row in cur.fetchall()]
        cur.execute(
            f"SELECT {column(Account, 'id')} FROM {table(Account)} "
            f"WHERE {column(Account, 'purpose')} = {value(AccountPurpose.PROMOTIONS)} "
            f"AND {column(Account, 'organization')} IS NULL")
        promotions = cur.fetchone()[0]
        # The per-statement references check would reread every row written; the --full
        # check below finds any entry naming a missing transfer or account.
        cur.execute(f"ALTER TABLE {table(Entry)} DISABLE TRIGGER entry_references")
    raw.commit()
    _copy_ledger(raw, wallets, promotions, first_transfer=1, first_entry=1, count=transfers,
                 grants=orgs, start=now - timedelta(days=365), end=now,
                 kinds=(str(TransferKind.GRANT), str(TransferKind.TRANSFER)), seed=1)
    # One organization far larger than the others: a fifth as many grants again, all to
    # its wallet, so that one account holds millions of entries.
    large = transfers // LARGE_SHARE
    _copy_ledger(raw, wallets[:1], promotions, first_transfer=transfers + 1,
                 first_entry=2 * transfers + 1, count=large, grants=large,
                 start=now - timedelta(days=365), end=now,
                 kinds=(str(TransferKind.GRANT), str(TransferKind.TRANSFER)), seed=3)
    with raw.cursor() as cur:
        cur.execute(f"ALTER TABLE {table(Entry)} ENABLE TRIGGER entry_references")
        _set_sequences(cur)
        _apply_balances(cur, after=0)
        cur.execute("ANALYZE")
    raw.commit()
    large_org = Account.objects.get(pk=wallets[0]).organization_id
    return {"wallets": wallets, "promotions": promotions, "transfers": transfers + large,
            "large_org": large_org, "large_entries": large,
            "build_s": time.perf_counter() - started}


def _copy_ledger(raw: Any, wallets: list[int], promotions: int, *, first_transfer: int,
                 first_entry: int, count: int, grants: int, start: datetime, end: datetime,
                 kinds: tuple[str, str], seed: int) -> None:
    """`count` transfers from ids first_transfer on, two entries each: the first `grants`
    credit each wallet in turn from promotions, the others move 1-100 tokens between two
    random wallets (a grant covers any organization's outflow)."""
    from banking.models import Entry, Transfer
    from core.sql_names import insert_into

    rng = random.Random(seed)
    step = (end - start) / max(count, 1)
    chunk = 500_000
    transfer_fields = ("id", "kind", "idempotency_key", "request_hash", "reference", "memo",
                       "reverses", "created_at")
    for low in range(0, count, chunk):
        transfers, entries = io.StringIO(), io.StringIO()
        for i in range(low, min(count, low + chunk)):
            tid, eid = first_transfer + i, first_entry + 2 * i
            at = (start + step * i).isoformat()
            if i < grants:
                kind, src, dst, amount = kinds[0], promotions, wallets[i % len(wallets)], GRANT
            else:
                kind, amount = kinds[1], rng.randint(1, 100)
                src, dst = rng.sample(wallets, 2)
            transfers.write(f"{tid}\t{kind}\tscale:{tid}\t{HASH}\t\t\t\\N\t{at}\n")
            entries.write(f"{eid}\t{tid}\t{src}\t{-amount}\n{eid + 1}\t{tid}\t{dst}\t{amount}\n")
        with raw.cursor() as cur:
            with cur.copy(f"COPY {insert_into(Transfer, *transfer_fields)} FROM STDIN") as copy:
                copy.write(transfers.getvalue())
            with cur.copy(f"COPY {insert_into(Entry, 'id', 'transfer', 'account', 'amount')} "
                          "FROM STDIN") as copy:
                copy.write(entries.getvalue())
        raw.commit()


def _set_sequences(cur: Any) -> None:
    from banking.models import Entry, Transfer
    from core.sql_names import column, table, value

    for model in (Transfer, Entry):
        cur.execute(
            f"SELECT setval(pg_get_serial_sequence({value(model._meta.db_table)}, 'id'), "
            f"(SELECT max({column(model, 'id')}) FROM {table(model)}))")


def _apply_balances(cur: Any, *, after: int) -> None:
    """Add the entries with id > after to their accounts' balances."""
    from banking.models import Account, Entry
    from core.sql_names import column, table

    balance = column(Account, "balance")
    cur.execute(
        f"UPDATE {table(Account)} a SET {balance} = a.{balance} + s.total "
        f"FROM (SELECT {column(Entry, 'account')} AS account_id, "
        f"SUM({column(Entry, 'amount')}) AS total FROM {table(Entry)} "
        f"WHERE {column(Entry, 'id')} > %s GROUP BY 1) s "
        f"WHERE a.{column(Account, 'id')} = s.account_id", [after])


def _jobs(orgs: int) -> None:
    """JOBS_PER_ORG finished jobs per organization (the jobs table at scale)."""
    from django.db import connection

    from banking.models import Organization
    from core.sql_names import column, insert_into, table, value
    from scheduler.models import GpuClass, Job

    gpu_class = GpuClass.objects.order_by("id").values_list("id", flat=True)[0]
    fields = ("organization", "spec", "gpu_class", "gpu_count", "min_vram_gb", "regions",
              "max_duration_s", "priority", "turn", "rate_per_gpu_hour", "hold_amount",
              "state", "attempts", "max_attempts", "failure_reason", "workload", "image",
              "image_digest", "created_at", "updated_at")
    now = datetime.now(UTC)
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {insert_into(Job, *fields)} "
            f"SELECT o.{column(Organization, 'id')}, '{{\"simulate\": {{\"seconds\": 60}}}}', "
            f"%s, 1, 0, '[]', 600, 0, 0, 1000, 0, {value(Job.State.SUCCEEDED)}, 1, 3, '', "
            f"{value(Job.Workload.SIMULATED)}, '', '', %s, %s "
            f"FROM {table(Organization)} o CROSS JOIN generate_series(1, %s) "
            f"ORDER BY random()", [gpu_class, now, now, JOBS_PER_ORG])
        cur.execute("ANALYZE")


def _api_figures(sampled: list[int], repeat: int, large_org: int
                 ) -> dict[str, dict[str, float]]:
    """p99 of each page through the API against the plain indexed SELECT of its rows."""
    from django.db import connection
    from django.test import Client

    from banking.models import Account, Entry, Transfer
    from banking.models.ledger import AccountPurpose
    from banking.services.customers import api_key_issue
    from core.sql_names import column, table
    from scheduler.models import Job

    clients = []
    for org in sampled:
        client = Client(HTTP_AUTHORIZATION=f"Api-Key {api_key_issue(organization_id=org).secret}")
        accounts = list(Account.objects.filter(organization_id=org).values_list("id", flat=True))
        transfer = Entry.objects.filter(account_id__in=accounts).order_by("-transfer_id") \
            .values_list("transfer_id", flat=True)[5]
        deeper = client.get("/api/v1/wallet/transfers/?page_size=20").json()["next"]
        clients.append((org, client, accounts, transfer, deeper))
    large_client = Client(
        HTTP_AUTHORIZATION=f"Api-Key {api_key_issue(organization_id=large_org).secret}")
    large_wallet = Account.objects.get(organization_id=large_org,
                                       purpose=AccountPurpose.WALLET).pk
    large_deeper = large_client.get("/api/v1/wallet/transfers/?page_size=20").json()["next"]
    rng = random.Random(7)

    def pick() -> tuple[int, Any, list[int], int, str]:
        return rng.choice(clients)

    def api(path: Callable[[tuple[int, Any, list[int], int, str]], str]) -> Callable[[], None]:
        def call() -> None:
            chosen = pick()
            response = chosen[1].get(path(chosen))
            assert response.status_code == 200, response.content[:200]
        return call

    e, t, a = table(Entry), table(Transfer), table(Account)
    ec = {f: column(Entry, f) for f in ("id", "transfer", "account", "amount")}
    tc = {f: column(Transfer, f) for f in ("id", "created_at", "kind", "reference", "memo")}
    statement_sql = (
        f"SELECT e.{ec['id']}, e.{ec['transfer']}, e.{ec['amount']}, t.{tc['created_at']}, "
        f"t.{tc['kind']}, t.{tc['reference']}, t.{tc['memo']}, a.{column(Account, 'purpose')} "
        f"FROM {e} e JOIN {t} t ON t.{tc['id']} = e.{ec['transfer']} "
        f"JOIN {a} a ON a.{column(Account, 'id')} = e.{ec['account']} "
        f"WHERE e.{ec['account']} = ANY(%s) ORDER BY e.{ec['transfer']} DESC, e.{ec['id']} DESC "
        f"LIMIT 21")
    jobs_sql = (f"SELECT * FROM {table(Job)} WHERE {column(Job, 'organization')} = %s "
                f"ORDER BY {column(Job, 'id')} DESC LIMIT 21")
    detail_sql = (
        f"SELECT e.{ec['id']}, e.{ec['amount']}, t.* FROM {e} e "
        f"JOIN {t} t ON t.{tc['id']} = e.{ec['transfer']} "
        f"WHERE e.{ec['account']} = ANY(%s) AND e.{ec['transfer']} = %s")

    # The large organization's rows are all on its wallet: one account's newest rows.
    one_account_sql = statement_sql.replace(f"e.{ec['account']} = ANY(%s)",
                                            f"e.{ec['account']} = %s")

    def plain(sql: str, params: Callable[[tuple[int, Any, list[int], int, str]], list[Any]]
              ) -> Callable[[], None]:
        def run() -> None:
            with connection.cursor() as cur:
                cur.execute(sql, params(pick()))
                cur.fetchall()
        return run

    def large(path: str) -> Callable[[], None]:
        def call() -> None:
            response = large_client.get(path)
            assert response.status_code == 200, response.content[:200]
        return call

    pages: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
        "statement": (api(lambda c: "/api/v1/wallet/transfers/?page_size=20"),
                      plain(statement_sql, lambda c: [c[2]])),
        "statement_next": (api(lambda c: c[4]), plain(statement_sql, lambda c: [c[2]])),
        "statement_large": (large("/api/v1/wallet/transfers/?page_size=20"),
                            plain(one_account_sql, lambda c: [large_wallet])),
        "statement_large_next": (large(large_deeper),
                                 plain(one_account_sql, lambda c: [large_wallet])),
        "jobs": (api(lambda c: "/api/v1/jobs/?page_size=20"), plain(jobs_sql, lambda c: [c[0]])),
        "transfer": (api(lambda c: f"/api/v1/wallet/transfers/{c[3]}/"),
                     plain(detail_sql, lambda c: [c[2], c[3]])),
    }
    return {name: {"api_p99_ms": _p99(_timed(through_api, repeat)),
                   "select_p99_ms": _p99(_timed(anchor, repeat))}
            for name, (through_api, anchor) in pages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the ledger")
    args = parser.parse_args()
    orgs, entries, new = (10_000, 1_000_000, 10_000) if args.quick else (
        100_000, 10_000_000, 100_000)
    transfers = entries // 2
    # Nothing posts while the bench checks: a run may trust the ids it reads itself.
    os.environ["LEDGER_CHECK_SETTLE_S"] = "0"
    # The pages are asked for over plain http, as a served bench's clients do: with the
    # production default (HTTPS on) each would be a redirect, not the page.
    os.environ.update(SERVING_ENV)
    name = urlsplit(server_url()).path.strip("/") or "suanli"
    with scratch_database(f"{name}_bench_scale") as url:
        use_database(url)
        import logging

        from django.db import connection

        # One line per request would be most of the bench's output.
        logging.getLogger("suanli.request").setLevel(logging.WARNING)

        from banking.models import Entry, Organization
        from banking.services.ledger_checks import ledger_check_run

        with cpu_share() as build_share:
            built = _build(orgs, transfers)
            _jobs(orgs)
        print(f"built {entries:,} entries ({transfers:,} transfers) across {orgs:,} "
              f"organizations, and {built['large_entries']:,} more on one organization's "
              f"wallet, by COPY in {built['build_s']:.0f} s, "
              f"{orgs * JOBS_PER_ORG:,} jobs ({build_share})")
        with cpu_share() as full_share:
            started = time.perf_counter()
            full = ledger_check_run(full=True)
            full_s = time.perf_counter() - started
        assert full.clean, full.violations[:5]
        print(f"verify_ledger --full: {full_s:.1f} s, clean ({full_share})")

        sampled = random.Random(3).sample(
            list(Organization.objects.exclude(pk=built["large_org"])
                 .values_list("id", flat=True)), SAMPLED_ORGS)
        repeat = 100 if args.quick else 300
        with cpu_share() as api_share:
            pages = _api_figures(sampled, repeat, built["large_org"])
        for page, figures in pages.items():
            print(f"(a) {page} p99 through the API: {figures['api_p99_ms']:.1f} ms "
                  f"(goal <= 20); plain indexed SELECT of the same rows: "
                  f"{figures['select_p99_ms']:.2f} ms (anchor)")
        print(f"    {repeat} requests each, {SAMPLED_ORGS} organizations ({api_share})")

        last_entry = Entry.objects.order_by("-id").values_list("id", flat=True)[0]
        raw = connection.connection
        from banking.models.ledger import TransferKind
        now = datetime.now(UTC)
        _copy_ledger(raw, built["wallets"], built["promotions"],
                     first_transfer=built["transfers"] + 1, first_entry=last_entry + 1,
                     count=new,
                     grants=0, start=now, end=now + timedelta(seconds=1),
                     kinds=(str(TransferKind.GRANT), str(TransferKind.TRANSFER)), seed=2)
        with raw.cursor() as cur:
            _set_sequences(cur)
            _apply_balances(cur, after=last_entry)
        raw.commit()
        with cpu_share() as incremental_share:
            started = time.perf_counter()
            incremental = ledger_check_run()
            incremental_s = time.perf_counter() - started
        assert incremental.clean and not incremental.full, incremental.violations[:5]
        print(f"(b) verify_ledger after {new:,} new transfers: {incremental_s:.2f} s "
              f"(goal <= 5); --full: {full_s:.1f} s (anchor; {incremental_share})")
        print(json.dumps({
            "entries": entries, "organizations": orgs, "new_transfers": new,
            "build_s": round(built["build_s"], 1),
            **{f"{page}_api_p99_ms": round(f["api_p99_ms"], 2) for page, f in pages.items()},
            **{f"{page}_select_p99_ms": round(f["select_p99_ms"], 3)
               for page, f in pages.items()},
            "verify_incremental_s": round(incremental_s, 2), "verify_full_s": round(full_s, 1),
            "cpu_stolen": {"build": round(build_share.stolen, 3),
                           "api": round(api_share.stolen, 3),
                           "verify": round(incremental_share.stolen, 3)},
        }))


if __name__ == "__main__":
    main()
