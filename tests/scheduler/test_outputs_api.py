"""Outputs: the agent's declaration is bounded (names, sizes, caps per file and job), the
filesystem storage's signed upload URL takes only the declared bytes before its expiry,
and buyers list and download them; another organization or node gets 404."""

import hashlib
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from scheduler.models import Assignment, JobOutput
from scheduler.services.placement import placement_run


@pytest.fixture(autouse=True)
def _objects_in_tmp(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "objects": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "objects")}}}
    return tmp_path / "objects"


@pytest.fixture
def running(submit_job, online_node, agent_client):
    node = online_node(gpus=4)
    job = submit_job(gpu_count=1, max_duration_s=3600)
    assert placement_run().placed == 1
    return node, job, Assignment.objects.get(job=job), agent_client(node)


def declare(client, assignment_id, files):
    return client.post(f"/api/v1/agent/assignments/{assignment_id}/outputs/", {"files": files},
                       format="json")


def file_of(name, body):
    return {"name": name, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def put(client, url, body):
    return client.put(url.replace("http://testserver", ""), data=body,
                      content_type="application/octet-stream")


def test_declare_upload_report_list_download(running, client, buyer, api_client_for,
                                             _objects_in_tmp):
    _node, job, a, agent = running
    body = b"weights" * 100
    answer = declare(agent, a.pk, [file_of("model/w.bin", body)])
    assert answer.status_code == 200
    [ticket] = answer.json()["results"]
    assert (ticket["name"], ticket["method"]) == ("model/w.bin", "PUT")
    assert put(client, ticket["url"], body).status_code == 204
    report = agent.post(f"/api/v1/agent/assignments/{a.pk}/outputs/report/",
                        {"name": "model/w.bin", "ok": True}, format="json")
    assert report.json()["state"] == "uploaded"
    [listed] = api_client_for(buyer).get(f"/api/v1/jobs/{job.pk}/outputs/").json()
    assert (listed["name"], listed["size"], listed["sha256"], listed["state"]) == (
        "model/w.bin", 700, hashlib.sha256(body).hexdigest(), "uploaded")
    download = client.get(listed["url"].replace("http://testserver", ""))
    assert b"".join(download.streaming_content) == body
    # A second declaration of the same file uploads nothing again
    assert declare(agent, a.pk, [file_of("model/w.bin", body)]).json() == {"results": []}


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a//b", "a\x00b", "", "x" * 256,
                                  "./a", "a/../b"])
def test_bad_names_are_refused(running, name):
    _node, _job, a, agent = running
    response = declare(agent, a.pk, [file_of(name, b"x")])
    assert response.status_code == 400
    assert JobOutput.objects.count() == 0


def test_caps_per_file_count_and_job(running, settings):
    _node, _job, a, agent = running
    settings.OUTPUT_MAX_FILE_BYTES = 10
    settings.OUTPUT_MAX_JOB_BYTES = 15
    settings.OUTPUT_MAX_FILES = 2
    too_big = declare(agent, a.pk, [file_of("a", b"x" * 11)])
    assert (too_big.status_code, too_big.json()["error"]["code"]) == (413, "output_cap_exceeded")
    too_many = declare(agent, a.pk, [file_of(n, b"x") for n in "abc"])
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (413,
                                                                        "output_cap_exceeded")
    too_much = declare(agent, a.pk, [file_of("a", b"x" * 8), file_of("b", b"x" * 8)])
    assert (too_much.status_code, too_much.json()["error"]["code"]) == (413,
                                                                        "output_cap_exceeded")
    assert JobOutput.objects.count() == 0


def test_an_upload_past_its_expiry_or_not_as_declared_stores_nothing(running, client,
                                                                      _objects_in_tmp):
    _node, _job, a, agent = running
    body = b"abc"
    [ticket] = declare(agent, a.pk, [file_of("a.txt", body)]).json()["results"]
    wrong = put(client, ticket["url"], b"abd")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (409, "output_mismatch")
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        late = put(client, ticket["url"], body)
    assert (late.status_code, late.json()["error"]["code"]) == (403, "output_url_invalid")
    forged = put(client, ticket["url"][:-5] + "abcd/", body)
    assert forged.status_code == 403
    assert JobOutput.objects.get().state == "pending"
    assert not _objects_in_tmp.exists() or not any(_objects_in_tmp.rglob("*.txt"))


def test_a_download_url_past_its_expiry_is_refused(running, client, buyer, api_client_for,
                                                   settings):
    settings.OUTPUT_DOWNLOAD_URL_TTL_S = 2
    _node, job, a, agent = running
    [ticket] = declare(agent, a.pk, [file_of("a.txt", b"abc")]).json()["results"]
    assert put(client, ticket["url"], b"abc").status_code == 204
    agent.post(f"/api/v1/agent/assignments/{a.pk}/outputs/report/", {"name": "a.txt",
                                                                     "ok": True}, format="json")
    [listed] = api_client_for(buyer).get(f"/api/v1/jobs/{job.pk}/outputs/").json()
    path = listed["url"].replace("http://testserver", "")
    assert client.get(path).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(seconds=3)):
        late = client.get(path)
    assert (late.status_code, late.json()["error"]["code"]) == (403, "output_url_invalid")


def test_no_upload_urls_once_the_assignment_ended_past_its_grace(running, settings):
    _node, _job, a, agent = running
    settings.OUTPUT_GRACE_S = 60
    Assignment.objects.filter(pk=a.pk).update(
        state=Assignment.State.COMPLETED, ended_at=timezone.now() - timedelta(seconds=30))
    assert declare(agent, a.pk, [file_of("a", b"x")]).status_code == 200  # within the grace
    Assignment.objects.filter(pk=a.pk).update(ended_at=timezone.now() - timedelta(seconds=61))
    late = declare(agent, a.pk, [file_of("b", b"y")])
    assert (late.status_code, late.json()["error"]["code"]) == (409, "log_closed")
    assert list(JobOutput.objects.values_list("name", flat=True)) == ["a"]


def test_another_node_and_organization_get_404(running, online_node, agent_client, make_org,
                                               api_client_for):
    _node, job, a, _agent = running
    other = agent_client(online_node(gpus=1))
    assert declare(other, a.pk, [file_of("a", b"x")]).status_code == 404
    response = api_client_for(make_org()).get(f"/api/v1/jobs/{job.pk}/outputs/")
    assert response.status_code == 404
    assert JobOutput.objects.count() == 0
