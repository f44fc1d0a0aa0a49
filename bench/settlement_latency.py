"""Usage reported -> settled, with a real Celery worker on Redis and PostgreSQL.

Reports usage for running assignments through the agent service (which asks for
settlement after its commit) and times until the ledger has captured it. Prints p50 and
p95 (goal p95 <= 10 s) and, as the anchor, the same report settled in this process with no
queue between. Last line: one JSON object.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import timedelta

from bench._scratch import ROOT, SERVING_ENV, scratch_database, use_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    samples = 20 if args.quick else 60
    with scratch_database("suanli_bench_settle") as url:
        use_database(url)
        from django.conf import settings

        settings.SCHEDULER_AUTO_APPROVE_NODES = True
        from django.db.models import F

        from banking.services.customers import organization_create
        from banking.services.ledger import grant_post
        from config.celery import app
        from scheduler.models import Assignment
        from scheduler.services.agent import usage_report
        from scheduler.services.jobs import job_submit
        from scheduler.services.nodes import node_heartbeat, node_register
        from scheduler.services.placement import placement_run

        provider = organization_create(name="p", is_buyer=False, is_provider=True)
        buyer = organization_create(name="b")
        grant_post(organization_id=buyer.pk, amount=10**13, reason="bench")
        node = node_register(provider_id=provider.pk, name="n", gpu_class="H100-80GB",
                             gpu_count=8, region="eu").node
        node_heartbeat(node_id=node.pk, free_gpus=8, busy_gpus=0, utilization=0,
                       agent_version="bench")
        for _ in range(8):
            job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 600}},
                       gpu_class="H100-80GB", gpu_count=1, max_duration_s=3600)
        placement_run()
        # Each report claims another minute of one GPU: the runs are placed an hour back,
        # so the clock check on usage (scheduler.services.plausibility) allows the claims.
        Assignment.objects.filter(node=node).update(
            created_at=F("created_at") - timedelta(hours=1))
        assignments = list(Assignment.objects.filter(node=node).values_list("id", flat=True))
        app.control.purge()
        from django.db import connections

        connections.close_all()
        env = {**os.environ, **SERVING_ENV, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q",
             "placement,settlement,default", "-P", "threads", "-c", "4", "--loglevel",
             "WARNING"], cwd=ROOT, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(5)  # the worker connects to the broker
            latencies = []
            seqs = dict.fromkeys(assignments, 0)
            for i in range(samples):
                a = assignments[i % len(assignments)]
                seqs[a] += 1
                reported = 60 * seqs[a]
                t0 = time.perf_counter()
                usage_report(node_id=node.pk, assignment_id=a, seq=seqs[a],
                             gpu_seconds=reported)
                deadline = t0 + 60
                while time.perf_counter() < deadline:
                    settled = Assignment.objects.filter(pk=a).values_list(
                        "settled_gpu_seconds", flat=True)[0]
                    if settled >= reported:
                        break
                    time.sleep(0.01)
                latencies.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            app.send_task("scheduler.placement_run").get if False else None
            # Anchor: the same report settled in this process, with no queue between.
            from unittest import mock

            from scheduler.services.settlement import usage_settle

            anchor = []
            with mock.patch("scheduler.enqueue.usage_settle"):
                for i in range(5):
                    a = assignments[i % len(assignments)]
                    seqs[a] += 1
                    t = time.perf_counter()
                    usage_report(node_id=node.pk, assignment_id=a, seq=seqs[a],
                                 gpu_seconds=60 * seqs[a])
                    usage_settle(assignment_ids=[a])
                    anchor.append(time.perf_counter() - t)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[round(0.95 * (len(latencies) - 1))]
    print(f"anchor: report and settle in one process, no queue: median "
          f"{statistics.median(anchor) * 1000:.0f} ms")
    print(f"usage reported -> settled in the ledger, {len(latencies)} reports: p50 "
          f"{p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (goal p95 <= 10 s)")
    print(json.dumps({"settle_p50_ms": round(p50 * 1000), "settle_p95_ms": round(p95 * 1000),
                      "in_process_ms": round(statistics.median(anchor) * 1000),
                      "samples": samples}))


if __name__ == "__main__":
    main()
