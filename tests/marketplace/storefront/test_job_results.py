"""The job page's log pane and outputs list; the whole log as a download; an output's
link to a fresh signed URL; another organization's member gets 404."""

import hashlib

import pytest

from scheduler.models import Assignment, JobOutput
from scheduler.services.logs import log_chunk_append
from scheduler.services.outputs import DeclaredFile, output_receive, outputs_request
from scheduler.services.placement import placement_run


@pytest.fixture(autouse=True)
def _objects_in_tmp(settings, tmp_path):
    settings.SCHEDULER_AUTO_APPROVE_NODES = True
    settings.STORAGES = {**settings.STORAGES, "objects": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "objects")}}}


@pytest.fixture
def finished_job(org, make_org, online_node):
    from banking.services.ledger import grant_post
    from scheduler.services.jobs import job_submit

    grant_post(organization_id=org.pk, amount=10_000_000_000, reason="test funds")
    node = online_node(gpus=1)
    job = job_submit(organization_id=org.pk, spec={"command": "train"},
                     gpu_class="H100-80GB", gpu_count=1, max_duration_s=600)
    assert placement_run().placed == 1
    a = Assignment.objects.get(job=job)
    log_chunk_append(node_id=node.pk, assignment_id=a.pk, offset=0,
                     data=b"O epoch 1\nE warn <b>\n")
    body = b"weights"
    [ticket] = outputs_request(node_id=node.pk, assignment_id=a.pk, files=[DeclaredFile(
        name="model.bin", size=len(body), sha256=hashlib.sha256(body).hexdigest())],
        base_url="http://testserver/")

    class Body:
        def __init__(self) -> None:
            self.left = body

        def read(self, size: int = -1) -> bytes:
            out, self.left = self.left[:size], self.left[size:]
            return out

    output_receive(token=ticket.url.rstrip("/").rsplit("/", 1)[1], body=Body(),
                   content_length=len(body))
    return job


def test_the_job_page_has_the_log_pane_and_the_outputs(owner_client, finished_job):
    page = owner_client.get(f"/jobs/{finished_job.pk}/").content.decode()
    assert f'data-url="/api/v1/jobs/{finished_job.pk}/logs/"' in page
    assert 'data-follow="1"' in page  # the job is still running: the pane follows
    output = JobOutput.objects.get()
    assert f'href="/jobs/{finished_job.pk}/outputs/{output.pk}/">model.bin</a>' in page
    assert "job-log.js" in page


def test_the_pane_reads_the_api_with_the_session(owner_client, finished_job):
    body = owner_client.get(f"/api/v1/jobs/{finished_job.pk}/logs/").json()
    assert body["text"] == "O epoch 1\nE warn <b>\n"


def test_the_whole_log_downloads_and_an_output_redirects_to_a_signed_url(owner_client,
                                                                        finished_job):
    response = owner_client.get(f"/jobs/{finished_job.pk}/log.txt")
    assert response["Content-Disposition"] == f'attachment; filename="job-{finished_job.pk}.log"'
    assert b"".join(response.streaming_content) == b"O epoch 1\nE warn <b>\n"
    output = JobOutput.objects.get()
    redirect = owner_client.get(f"/jobs/{finished_job.pk}/outputs/{output.pk}/")
    assert redirect.status_code == 302
    assert redirect["Location"].startswith("http://testserver/api/v1/objects/download/")
    download = owner_client.get(redirect["Location"].replace("http://testserver", ""))
    assert b"".join(download.streaming_content) == b"weights"


def test_another_organizations_member_gets_404(finished_job, make_org, client_for):
    stranger = client_for(make_org())
    output = JobOutput.objects.get()
    for path in (f"/jobs/{finished_job.pk}/", f"/jobs/{finished_job.pk}/log.txt",
                 f"/jobs/{finished_job.pk}/outputs/{output.pk}/"):
        assert stranger.get(path).status_code == 404


def test_the_webhooks_page_shows_every_attempt(owner_client, org, make_org, client_for):
    from banking.models import WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookMessage

    endpoint = WebhookEndpoint.objects.create(organization=org, url="https://h.example.com/x",
                                              events=["job.succeeded"], secret="whsec_x")
    event = WebhookEvent.objects.create(organization=org, type="job.succeeded", key="k",
                                        payload={})
    message = WebhookMessage.objects.create(endpoint=endpoint, event=event)
    WebhookDelivery.objects.create(message=message, attempt=1, status_code=500,
                                   error="HTTP 500")
    WebhookDelivery.objects.create(message=message, attempt=2, status_code=200, succeeded=True)
    page = owner_client.get("/webhooks/").content.decode()
    assert "<code>https://h.example.com/x</code> — job.succeeded" in page
    assert "500 — HTTP 500" in page and "200 delivered" in page
    other = client_for(make_org()).get("/webhooks/").content.decode()
    assert "h.example.com" not in other and "Nothing sent yet." in other
