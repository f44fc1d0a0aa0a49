"""The signed URLs of outputs on an S3-protocol server (moto_server, its own process, used
over HTTP): what our code puts in them (the configured expiry, the declared length signed)
and what the server does with them once expired.

moto_server checks neither the expiry nor the signature of a presigned URL: it stores and
serves through an expired or forged one. The two tests of the refusal past expiry are
therefore strict xfails: they wait past the expiry for real, and the day moto (or the
server they run against) refuses, they pass and fail the suite, to be made plain tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from django.utils.dateparse import parse_datetime

from scheduler.models import Assignment, JobOutput
from scheduler.services.jobs import job_submit
from scheduler.services.placement import placement_run

from .live_parts import ROOT, moto_url, use_s3

__all__ = ["moto_url"]

pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("live-objects")]

BODY = b"weights" * 100
MOTO_IGNORES_EXPIRY = pytest.mark.xfail(
    raises=AssertionError, strict=True,
    reason="moto_server does not check X-Amz-Expires: S3 answers 403 'Request has expired'")


@pytest.fixture
def bucket(settings, moto_url) -> Any:
    name = f"expiry-{time.time_ns()}"
    use_s3(settings, moto_url, name)
    client = boto3.client("s3", endpoint_url=moto_url, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    return lambda key: _stored(client, name, key)


def _stored(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "404"
        return False
    return True


@pytest.fixture
def running(buyer, online_node, agent_client, settings):
    settings.SCHEDULER_AUTO_APPROVE_NODES = True
    node = online_node(gpus=1)
    job = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                     gpu_class="H100-80GB", gpu_count=1, max_duration_s=600)
    assert placement_run().placed == 1
    return job, Assignment.objects.get(job=job), agent_client(node)


def declare(agent: Any, assignment_id: int) -> dict[str, Any]:
    answer = agent.post(f"/api/v1/agent/assignments/{assignment_id}/outputs/", {"files": [
        {"name": "w.bin", "size": len(BODY), "sha256": hashlib.sha256(BODY).hexdigest()}]},
        format="json")
    assert answer.status_code == 200, answer.content
    [ticket] = answer.json()["results"]
    return dict(ticket)


def signed(url: str) -> tuple[datetime, int, list[str]]:
    """When a SigV4 URL was signed, for how many seconds, and the headers it binds."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return at, int(query["X-Amz-Expires"]), query["X-Amz-SignedHeaders"].split(";")


def upload(ticket: dict[str, Any]) -> httpx.Response:
    return httpx.put(ticket["url"], content=BODY, headers=ticket["headers"])


def report(agent: Any, assignment_id: int) -> Any:
    return agent.post(f"/api/v1/agent/assignments/{assignment_id}/outputs/report/",
                      {"name": "w.bin", "ok": True}, format="json")


def download_url(api_client_for: Any, buyer: Any, job_id: int) -> str:
    [listed] = api_client_for(buyer).get(f"/api/v1/jobs/{job_id}/outputs/").json()
    return str(listed["url"])


def test_urls_carry_the_configured_expiry_and_the_upload_binds_the_length(
        running, bucket, settings, api_client_for, buyer):
    settings.OUTPUT_UPLOAD_URL_TTL_S = 2
    settings.OUTPUT_DOWNLOAD_URL_TTL_S = 1
    job, a, agent = running
    before = datetime.now(UTC)
    ticket = declare(agent, a.pk)
    after = datetime.now(UTC)
    at, expires_s, headers = signed(ticket["url"])
    assert expires_s == 2
    # both the URL and the expiry told to the agent count from within the request (the
    # URL's date is to the second)
    assert before - timedelta(seconds=1) <= at <= after
    expires_at = parse_datetime(ticket["expires_at"])
    assert expires_at is not None
    assert before <= expires_at - timedelta(seconds=2) <= after
    assert "content-length" in headers
    assert ticket["headers"] == {"Content-Length": str(len(BODY))}
    output = JobOutput.objects.get()
    assert not bucket(output.storage_name)
    assert upload(ticket).status_code == 200
    assert report(agent, a.pk).json()["state"] == "uploaded"
    url = download_url(api_client_for, buyer, job.pk)
    assert signed(url)[1] == 1
    assert httpx.get(url).content == BODY


def test_the_configured_s3_storage_presigns_with_sigv4(moto_url):
    # config.settings builds the S3 storage only when OBJECT_STORAGE=s3 at import: a
    # process of its own, in the default region, where botocore would presign SigV2
    script = ("import django, json; django.setup()\n"
              "from django.core.files.storage import storages\n"
              "s = storages['objects']\n"
              "put = s.bucket.meta.client.generate_presigned_url('put_object', Params={"
              "'Bucket': s.bucket_name, 'Key': 'k', 'ContentLength': 3}, ExpiresIn=7)\n"
              "print(json.dumps([put, s.url('k', expire=5)]))\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "OBJECT_STORAGE": "s3",
           "OBJECT_STORAGE_ENDPOINT_URL": moto_url, "OBJECT_STORAGE_REGION": "us-east-1",
           "OBJECT_STORAGE_ACCESS_KEY": "test", "OBJECT_STORAGE_SECRET_KEY": "test"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    put, get = json.loads(done.stdout.strip().splitlines()[-1])
    assert signed(put)[1:] == (7, ["content-length", "host"])
    assert signed(get)[1] == 5


@MOTO_IGNORES_EXPIRY
def test_an_upload_url_past_its_expiry_is_refused_and_stores_nothing(running, bucket,
                                                                     settings):
    settings.OUTPUT_UPLOAD_URL_TTL_S = 1
    _job, a, agent = running
    ticket = declare(agent, a.pk)
    time.sleep(2.5)  # past the expiry, counted from the URL's signing second
    late = upload(ticket)
    assert late.status_code == 403
    assert not bucket(JobOutput.objects.get().storage_name)
    assert report(agent, a.pk).json()["error"]["code"] == "output_mismatch"


@MOTO_IGNORES_EXPIRY
def test_a_download_url_past_its_expiry_is_refused(running, bucket, settings, api_client_for,
                                                   buyer):
    settings.OUTPUT_DOWNLOAD_URL_TTL_S = 1
    job, a, agent = running
    assert upload(declare(agent, a.pk)).status_code == 200
    assert report(agent, a.pk).json()["state"] == "uploaded"
    url = download_url(api_client_for, buyer, job.pk)
    time.sleep(2.5)
    late = httpx.get(url)
    assert late.status_code == 403
    assert BODY not in late.content
