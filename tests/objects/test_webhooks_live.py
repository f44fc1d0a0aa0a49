"""A webhook endpoint receives exactly one signed `job.succeeded` per job, delivered by a
real Celery worker that retries through the endpoint's own 500s."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from banking.models import WebhookDelivery
from banking.services.webhooks import signature_verify, webhook_endpoint_create
from scheduler.models import Assignment
from scheduler.services.agent import assignment_complete
from scheduler.services.jobs import job_submit
from scheduler.services.placement import placement_run
from tests.live import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker,
              pytest.mark.xdist_group("live-worker")]


class Receiver:
    """Answers 500 to the first `failures` requests, then 200; keeps what it was sent."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[int, bytes, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 500 if receiver.failures > 0 else 200
                receiver.failures -= 1
                receiver.received.append((status, body,
                                          self.headers.get("Suanli-Signature", "")))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"


@pytest.fixture
def fast_webhook_retries(monkeypatch, settings):
    monkeypatch.setenv("WEBHOOKS_DEVELOPMENT", "true")
    monkeypatch.setenv("WEBHOOKS_RETRY_BASE_S", "0.2")
    settings.WEBHOOKS_DEVELOPMENT = True


def test_one_signed_job_succeeded_per_job_through_500s(fast_webhook_retries, celery_worker,
                                                      buyer, online_node, settings):
    receiver = Receiver(failures=2)
    created = webhook_endpoint_create(organization_id=buyer.pk, url=receiver.url,
                                      events=["job.succeeded"])
    node = online_node(gpus=2)
    job_ids = []
    for _ in range(2):
        job = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 5}},
                         gpu_class="H100-80GB", gpu_count=1, max_duration_s=600)
        job_ids.append(job.pk)
    placement_run()  # the worker's beat may place them first
    wait_until(lambda: Assignment.objects.filter(job_id__in=job_ids).count() == 2, 30,
               "both jobs placed")
    for a in Assignment.objects.filter(job_id__in=job_ids):
        for _ in range(2):  # a repeated report: still one event
            assignment_complete(node_id=node.pk, assignment_id=a.pk, seq=1, gpu_seconds=3,
                                ai_tokens=0, exit_code=0)
    wait_until(lambda: sum(1 for s, _, _ in receiver.received if s == 200) == 2, 60,
               "two deliveries accepted")
    time.sleep(2)  # and nothing more comes
    delivered = [json.loads(body) for status, body, _ in receiver.received if status == 200]
    assert sorted(d["data"]["object"]["id"] for d in delivered) == sorted(job_ids)
    assert {d["type"] for d in delivered} == {"job.succeeded"}
    assert all(signature_verify(created.secret, body, signature)
               for _, body, signature in receiver.received)
    assert len(receiver.received) == 4  # two 500s, then one 200 per job
    assert WebhookDelivery.objects.filter(succeeded=True).count() == 2
    assert WebhookDelivery.objects.filter(succeeded=False, status_code=500).count() == 2
    receiver.httpd.shutdown()
