"""Log chunks in at byte offsets, read back by the buyer; caps, gaps, other nodes and
organizations, the grace after the end, retention (storage emptied)."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from scheduler.models import Assignment, AssignmentLog, Job, LogChunk
from scheduler.services.logs import objects_expire
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


def post_chunk(client, assignment_id, offset, data):
    return client.post(f"/api/v1/agent/assignments/{assignment_id}/logs/?offset={offset}",
                       data=data, content_type="application/octet-stream")


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_chunks_append_and_a_resend_changes_nothing(running, buyer, api_client_for,
                                                    _objects_in_tmp):
    _node, job, a, client = running
    first = post_chunk(client, a.pk, 0, b"O hello\n")
    assert first.status_code == 200
    assert first.json() == {"offset": 8, "stored": 8, "cap": 64 * 1024 * 1024}
    again = post_chunk(client, a.pk, 0, b"O hello\n")
    assert again.json() == {"offset": 8, "stored": 0, "cap": 64 * 1024 * 1024}
    # overlapping: only the new tail is stored
    overlap = post_chunk(client, a.pk, 2, b"hello\nE world\n")
    assert overlap.json()["offset"] == 16
    assert overlap.json()["stored"] == 8
    assert LogChunk.objects.filter(log__assignment=a).count() == 2
    assert len(stored_files(_objects_in_tmp)) == 2
    body = api_client_for(buyer).get(f"/api/v1/jobs/{job.pk}/logs/").json()
    assert body == {"attempt": 1, "offset": 0, "next_offset": 16, "size": 16, "ended": False,
                    "purged": False, "text": "O hello\nE world\n"}
    part = api_client_for(buyer).get(f"/api/v1/jobs/{job.pk}/logs/?offset=4&limit=6").json()
    assert (part["text"], part["next_offset"]) == ("llo\nE ", 10)


def test_a_gap_is_refused_with_the_servers_offset(running, _objects_in_tmp):
    _node, _job, a, client = running
    post_chunk(client, a.pk, 0, b"O one\n")
    response = post_chunk(client, a.pk, 100, b"O two\n")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "log_offset_gap"
    assert response.json()["error"]["fields"] == {"offset": 6}
    assert AssignmentLog.objects.get(pk=a.pk).size == 6
    assert len(stored_files(_objects_in_tmp)) == 1


@pytest.mark.parametrize("offset", ["-1", "x", "", "99999999999999999999"])
def test_bad_offsets_are_refused(running, offset, _objects_in_tmp):
    _node, _job, a, client = running
    response = post_chunk(client, a.pk, offset, b"O x\n")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not AssignmentLog.objects.filter(pk=a.pk).exists()
    assert stored_files(_objects_in_tmp) == []


def test_another_nodes_assignment_is_404(running, online_node, agent_client, _objects_in_tmp):
    _node, _job, a, _client = running
    other = agent_client(online_node(gpus=1))
    response = post_chunk(other, a.pk, 0, b"O mine\n")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert stored_files(_objects_in_tmp) == []


def test_the_cap_and_the_chunk_size_are_enforced(running, settings, _objects_in_tmp):
    _node, _job, a, client = running
    settings.LOG_MAX_BYTES_PER_JOB = 10
    settings.LOG_CHUNK_MAX_BYTES = 8
    assert post_chunk(client, a.pk, 0, b"O 12345\n").status_code == 200
    over = post_chunk(client, a.pk, 8, b"O 3\n")
    assert over.status_code == 413
    assert over.json()["error"]["code"] == "log_cap_exceeded"
    big = post_chunk(client, a.pk, 8, b"O 123456789\n")
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "log_chunk_too_large"
    assert AssignmentLog.objects.get(pk=a.pk).size == 8
    assert len(stored_files(_objects_in_tmp)) == 1


def test_chunks_after_the_end_and_grace_are_refused(running, settings, _objects_in_tmp):
    _node, _job, a, client = running
    post_chunk(client, a.pk, 0, b"O a\n")
    Assignment.objects.filter(pk=a.pk).update(
        state=Assignment.State.COMPLETED,
        ended_at=timezone.now() - timedelta(seconds=settings.LOG_GRACE_S - 30))
    assert post_chunk(client, a.pk, 4, b"O b\n").status_code == 200  # within the grace
    Assignment.objects.filter(pk=a.pk).update(
        ended_at=timezone.now() - timedelta(seconds=settings.LOG_GRACE_S + 1))
    late = post_chunk(client, a.pk, 8, b"O c\n")
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "log_closed"
    assert AssignmentLog.objects.get(pk=a.pk).size == 8


def test_another_organization_gets_404(running, make_org, api_client_for, _objects_in_tmp):
    _node, job, a, client = running
    post_chunk(client, a.pk, 0, b"O secret\n")
    stranger = api_client_for(make_org())
    for path in ("logs/", "logs/?follow=1", "outputs/"):
        response = stranger.get(f"/api/v1/jobs/{job.pk}/{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_retention_empties_storage(running, settings, buyer, api_client_for, _objects_in_tmp):
    _node, job, a, client = running
    post_chunk(client, a.pk, 0, b"O a\n")
    post_chunk(client, a.pk, 4, b"O b\n")
    assert len(stored_files(_objects_in_tmp)) == 2
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.SUCCEEDED, finished_at=timezone.now() - timedelta(days=29))
    assert objects_expire().chunks == 0
    assert len(stored_files(_objects_in_tmp)) == 2
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=31))
    result = objects_expire()
    assert (result.logs, result.chunks) == (1, 2)
    assert stored_files(_objects_in_tmp) == []
    assert LogChunk.objects.count() == 0
    body = api_client_for(buyer).get(f"/api/v1/jobs/{job.pk}/logs/").json()
    assert (body["purged"], body["text"], body["size"]) == (True, "", 8)
    assert objects_expire().logs == 0  # twice is safe


def test_a_job_without_a_log_reads_empty(running, buyer, api_client_for):
    _node, job, _a, _client = running
    body = api_client_for(buyer).get(f"/api/v1/jobs/{job.pk}/logs/").json()
    assert (body["attempt"], body["text"], body["next_offset"]) == (0, "", 0)


def test_follow_streams_until_the_run_ends(running, buyer, api_client_for, settings):
    _node, job, a, client = running
    settings.LOG_FOLLOW_POLL_S = 0.05
    post_chunk(client, a.pk, 0, b"O one\n")
    Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.COMPLETED,
                                              ended_at=timezone.now() - timedelta(seconds=10))
    AssignmentLog.objects.filter(pk=a.pk).update(updated_at=timezone.now() - timedelta(seconds=10))
    response = api_client_for(buyer).get(f"/api/v1/jobs/{job.pk}/logs/?follow=1")
    assert response["Content-Type"] == "text/event-stream"
    body = b"".join(response.streaming_content).decode()
    assert body.startswith('event: log\ndata: {"attempt": 1, "offset": 0, "next_offset": 6')
    assert '"text": "O one\\n"' in body
    assert body.endswith('event: end\ndata: {"next_offset": 6, "attempt": 1}\n\n')


@pytest.mark.django_db(transaction=True)
def test_the_agents_asgi_server_answers_chunks_as_the_view_does(running, _objects_in_tmp):
    from tests.scheduler.asgi_door import through_asgi

    node, _job, a, _client = running
    path = f"/api/v1/agent/assignments/{a.pk}/logs/"
    auth = f"Node {node.token}"
    status, body, _ = through_asgi(auth, b"O one\n", {}, path=path, query=b"offset=0")
    assert (status, body) == (200, {"offset": 6, "stored": 6, "cap": 64 * 1024 * 1024})
    status, body, _ = through_asgi(auth, b"O one\n", {}, path=path, query=b"offset=0")
    assert (status, body) == (200, {"offset": 6, "stored": 0, "cap": 64 * 1024 * 1024})
    status, body, _ = through_asgi(auth, b"O three\n", {}, path=path, query=b"offset=9")
    assert status == 409
    assert body["error"] == {"code": "log_offset_gap", "fields": {"offset": 6},
                             "message": "The log has 6 bytes: send from offset 6."}
    status, body, _ = through_asgi(auth, b"O x\n", {}, path=path, query=b"offset=-1")
    assert (status, body["error"]["code"]) == (400, "invalid")
    status, body, _ = through_asgi("Node nt_nope_x", b"O x\n", {}, path=path, query=b"offset=6")
    assert (status, body["error"]["code"]) == (401, "not_authenticated")
    assert AssignmentLog.objects.get(pk=a.pk).size == 6
    assert len([p for p in _objects_in_tmp.rglob("*") if p.is_file()]) == 1


@pytest.mark.django_db(transaction=True)  # the door's database threads see what committed
def test_the_agents_asgi_server_refuses_other_nodes_disabled_nodes_and_odd_digits(
        running, online_node, _objects_in_tmp):
    from scheduler.models import Node
    from tests.scheduler.asgi_door import through_asgi

    node, _job, a, _client = running
    path = f"/api/v1/agent/assignments/{a.pk}/logs/"
    other = online_node(gpus=1)
    status, body, _ = through_asgi(f"Node {other.token}", b"O x\n", {}, path=path,
                                   query=b"offset=0")
    assert (status, body["error"]["code"]) == (404, "not_found")
    # A superscript two (latin-1 0xB2, as the door decodes a query) is a digit to
    # str.isdigit and not to int().
    status, body, _ = through_asgi(f"Node {node.token}", b"O x\n", {}, path=path,
                                   query=b"offset=\xb2")
    assert (status, body["error"]["code"]) == (400, "invalid")
    Node.objects.filter(pk=node.pk).update(status=Node.Status.DISABLED)
    status, body, _ = through_asgi(f"Node {node.token}", b"O x\n", {}, path=path,
                                   query=b"offset=0")
    assert (status, body["error"]["code"]) == (401, "not_authenticated")
    assert not AssignmentLog.objects.filter(pk=a.pk).exists()
    assert stored_files(_objects_in_tmp) == []


def test_the_view_refuses_what_the_door_refuses(running, client):
    _node, _job, a, _agent = running
    response = client.post(f"/api/v1/agent/assignments/{a.pk}/logs/?offset=0", data=b"O x\n",
                           content_type="application/octet-stream",
                           HTTP_AUTHORIZATION="Node nt_bad_token")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert not AssignmentLog.objects.filter(pk=a.pk).exists()


def _follow_through_asgi(authorization: str, path: str, query: bytes) -> tuple[int, bytes]:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from config.asgi import application

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "server": ("testserver", 80),
             "client": ("127.0.0.1", 5000),
             "headers": [(b"authorization", authorization.encode())]}
    messages: list[dict] = []

    async def receive() -> dict:
        await asyncio.Event().wait()  # the follower stays connected
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        messages.append(message)

    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, application(scope, receive, send)).result(timeout=30)
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])


@pytest.mark.django_db(transaction=True)
def test_followers_on_the_agents_asgi_server_get_the_same_events(running, buyer, make_org,
                                                                 settings, _objects_in_tmp):
    from banking.services.customers import api_key_issue

    _node, job, a, client = running
    settings.LOG_FOLLOW_POLL_S = 0.05
    post_chunk(client, a.pk, 0, b"O one\n")
    Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.COMPLETED,
                                              ended_at=timezone.now() - timedelta(seconds=10))
    AssignmentLog.objects.filter(pk=a.pk).update(updated_at=timezone.now() - timedelta(seconds=10))
    key = api_key_issue(organization_id=buyer.pk).secret
    path = f"/api/v1/jobs/{job.pk}/logs/"
    status, body = _follow_through_asgi(f"Api-Key {key}", path, b"follow=1")
    assert status == 200
    assert body == (b'event: log\ndata: {"attempt": 1, "offset": 0, "next_offset": 6, "size": 6, '
                    b'"ended": true, "purged": false, "text": "O one\\n"}\n\n'
                    b'event: end\ndata: {"next_offset": 6, "attempt": 1}\n\n')
    stranger = api_key_issue(organization_id=make_org().pk).secret
    status, body = _follow_through_asgi(f"Api-Key {stranger}", path, b"follow=1")
    assert status == 404
    status, _ = _follow_through_asgi("Api-Key sk_nope", path, b"follow=1")
    assert status == 401
    status, body = _follow_through_asgi(f"Api-Key {key}", path,
                                        b"follow=1&offset=\xb2")
    assert status == 400 and b"invalid" in body
