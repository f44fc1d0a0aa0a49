"""The buyer gets back what the job printed and wrote: a real node agent process runs a
real command in real podman (busybox sh in the local test image), the
live API on PostgreSQL, storage on the filesystem and on an S3-protocol server (moto)
used over HTTP through presigned URLs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.utils import timezone

from banking.services.customers import api_key_issue
from scheduler.models import Assignment, Job, LogChunk, Node
from scheduler.services.logs import objects_expire
from scheduler.services.nodes import node_register
from scheduler.services.placement import placement_run
from tests.live import wait_until

from .live_parts import (
    CuttableProxy,
    agent_process,
    moto_url,
    use_filesystem,
    use_s3,
    wait_isolated,
)

__all__ = ["agent_process", "moto_url"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("live-objects"),
              pytest.mark.slow]

SUANLI = Path(sys.executable).with_name("suanli")

# busybox sh in the test image: $1 lines on each stream, a pause of $2 s every 100, then
# three files in the outputs directory (model.bin is bytes 0-255, 1200 times over).
PRINTER = r'''
i=0
while [ "$i" -lt "$1" ]; do
    printf 'out %05d\n' "$i"
    printf 'err %05d\n' "$i" >&2
    i=$((i + 1))
    if [ "$2" != 0 ] && [ $((i % 100)) -eq 0 ]; then sleep "$2"; fi
done
out=$SUANLI_OUTPUTS_DIR
bytes=""
b=0
while [ "$b" -lt 256 ]; do bytes="$bytes\\$(printf %o "$b")"; b=$((b + 1)); done
j=0
while [ "$j" -lt 1200 ]; do printf "$bytes"; j=$((j + 1)); done > "$out/model.bin"
mkdir "$out/sub"
printf '{"loss": 0.125}' > "$out/sub/metrics.json"
printf 'done\n' > "$out/notes.txt"
'''


@pytest.fixture
def parties(make_org, settings):
    settings.SCHEDULER_AUTO_APPROVE_NODES = True
    provider = make_org(provider=True, buyer=False)
    buyer = make_org(tokens=10_000_000_000)
    registered = node_register(provider_id=provider.pk, name="live-1", gpu_class="H100-80GB",
                               gpu_count=1, region="eu-west")
    key = api_key_issue(organization_id=buyer.pk).secret
    return registered, buyer, key


def submit(base: str, key: str, command: list[str]) -> int:
    response = httpx.post(f"{base}/api/v1/jobs/", headers={"Authorization": f"Api-Key {key}"},
                          json={"spec": {"command": command}, "gpu_class": "H100-80GB",
                                "gpu_count": 1, "max_duration_s": 600}, timeout=10)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def place(node_id: int) -> None:
    wait_until(lambda: Node.objects.filter(pk=node_id, status="online").exists(), 30,
               "the node online")
    assert placement_run().placed == 1


def read_log(base: str, key: str, job_id: int, attempt: int | None = None) -> str:
    text, offset = [], 0
    while True:
        params: dict[str, Any] = {"offset": offset, "limit": 100_000}
        if attempt:
            params["attempt"] = attempt
        body = httpx.get(f"{base}/api/v1/jobs/{job_id}/logs/", params=params,
                         headers={"Authorization": f"Api-Key {key}"}, timeout=10).json()
        text.append(body["text"])
        offset = body["next_offset"]
        if offset >= body["size"]:
            return "".join(text)


def lines_of(text: str, mark: str, word: str) -> list[int]:
    return [int(line.split()[2]) for line in text.splitlines()
            if line.startswith(f"{mark} {word} ")]


def follow(base: str, key: str, job_id: int, seen: list[tuple[float, str]]) -> None:
    with httpx.stream("GET", f"{base}/api/v1/jobs/{job_id}/logs/", params={"follow": 1},
                      headers={"Authorization": f"Api-Key {key}"}, timeout=60) as response:
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                seen.append((time.time(), event if event == "end" else
                             json.loads(line[6:])["text"]))


@pytest.fixture(params=["filesystem", "s3"])
def storage(request, settings, tmp_path) -> str:
    if request.param == "s3":
        use_s3(settings, request.getfixturevalue("moto_url"), f"suanli-{time.time_ns()}")
    else:
        use_filesystem(settings, tmp_path / "objects")
    return str(request.param)


def cli(server: str, key: str, tmp_path: Path, *args: str, **kw: Any) -> Any:
    env = {**os.environ, "SUANLI_SERVER": server, "SUANLI_API_KEY": key,
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    return subprocess.run([str(SUANLI), *args], env=env, capture_output=True, text=True,
                          timeout=120, **kw)


def test_a_real_job_prints_20000_lines_and_writes_3_files(
        live_server, parties, agent_process, storage, make_org, tmp_path):
    def stored_names() -> list[str]:
        from scheduler.services.logs import object_storage

        found: list[str] = []
        folders = [""]
        while folders:
            folder = folders.pop()
            dirs, files = object_storage().listdir(folder)
            found += [f"{folder}/{f}".lstrip("/") for f in files]
            folders += [f"{folder}/{d}".lstrip("/") for d in dirs]
        return sorted(found)

    registered, _buyer, key = parties
    agent_process(live_server.url, registered.token)
    wait_isolated(registered.node.pk)
    job_id = submit(live_server.url, key, ["sh", "-c", PRINTER, "printer", "10000", "0.03"])
    env = {**os.environ, "SUANLI_SERVER": live_server.url, "SUANLI_API_KEY": key}
    cli_follow = subprocess.Popen([str(SUANLI), "jobs", "logs", "-f", "--marks", str(job_id)],
                                  env=env, stdout=subprocess.PIPE, text=True)
    place(registered.node.pk)
    seen: list[tuple[float, str]] = []
    follower = threading.Thread(target=follow, args=(live_server.url, key, job_id, seen))
    follower.start()
    assert cli_follow.stdout is not None
    first_cli_line = cli_follow.stdout.readline()
    cli_line_at = time.time()
    wait_until(lambda: Job.objects.get(pk=job_id).state == "succeeded", 120, "the job done")
    follower.join(timeout=30)
    cli_rest = cli_follow.stdout.read()  # from the same buffer readline() filled
    cli_follow.wait(timeout=60)

    # -f saw lines while the job ran, and all of them, then the end
    finished_at = Job.objects.get(pk=job_id).finished_at
    assert finished_at is not None
    finished = finished_at.timestamp()
    assert seen[0][0] < finished
    assert seen[-1][1] == "end"
    followed = "".join(text for _, text in seen[:-1])
    # The whole log in order through the API: each stream complete and in its order
    text = read_log(live_server.url, key, job_id)
    assert followed == text
    assert lines_of(text, "O", "out") == list(range(10_000))
    assert lines_of(text, "E", "err") == list(range(10_000))
    assert len(text.splitlines()) == 20_000
    # ... and through the CLI: `-f` saw its first line while the job ran, then all of it
    assert cli_line_at < finished
    assert first_cli_line + cli_rest == text
    assert cli_follow.returncode == 0
    logs = cli(live_server.url, key, tmp_path, "jobs", "logs", "--marks", str(job_id))
    assert (logs.returncode, logs.stdout) == (0, text)
    split = cli(live_server.url, key, tmp_path, "jobs", "logs", str(job_id))
    assert split.stdout.splitlines() == [f"out {i:05d}" for i in range(10_000)]
    assert split.stderr.splitlines() == [f"err {i:05d}" for i in range(10_000)]
    assert cli(live_server.url, key, tmp_path, "jobs", "wait", str(job_id)).returncode == 0

    # The three outputs download byte-identical
    listing = wait_until(lambda: (lambda r: r if all(o["state"] == "uploaded" for o in r)
                                  and len(r) == 3 else None)(
        httpx.get(f"{live_server.url}/api/v1/jobs/{job_id}/outputs/",
                  headers={"Authorization": f"Api-Key {key}"}).json()), 60, "3 outputs")
    expected = {"model.bin": bytes(range(256)) * 1200, "notes.txt": b"done\n",
                "sub/metrics.json": b'{"loss": 0.125}'}
    assert [o["name"] for o in listing] == sorted(expected)
    for output in listing:
        body = httpx.get(output["url"], timeout=30).content
        assert hashlib.sha256(body).hexdigest() == output["sha256"]
        assert body == expected[output["name"]]
        assert output["size"] == len(expected[output["name"]])
    if storage == "s3":
        assert listing[0]["url"].startswith(live_server.url) is False
    got = cli(live_server.url, key, tmp_path, "outputs", "get", str(job_id),
              str(tmp_path / "got"))
    assert got.returncode == 0, got.stderr
    for name, body in expected.items():
        assert (tmp_path / "got" / name).read_bytes() == body

    # Another organization: 404 on logs and outputs
    stranger = api_key_issue(organization_id=make_org().pk).secret
    for path in ("logs/", "outputs/"):
        response = httpx.get(f"{live_server.url}/api/v1/jobs/{job_id}/{path}",
                             headers={"Authorization": f"Api-Key {stranger}"})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    # Retention: 30 days after the job ended, storage holds nothing of it
    assert len(stored_names()) == LogChunk.objects.count() + 3
    Job.objects.filter(pk=job_id).update(finished_at=timezone.now() - timedelta(days=31))
    purged = objects_expire()
    assert (purged.logs, purged.outputs) == (1, 3)
    assert stored_names() == []
    assert httpx.get(f"{live_server.url}/api/v1/jobs/{job_id}/outputs/", headers={
        "Authorization": f"Api-Key {key}"}).json()[0]["url"] is None


# $1 lines "tick NNNNN", $2 s apart.
COUNTER = r'''
i=0
while [ "$i" -lt "$1" ]; do
    printf 'tick %05d\n' "$i"
    sleep "$2"
    i=$((i + 1))
done
'''


def test_agent_killed_and_restarted_loses_and_repeats_no_byte(live_server, parties,
                                                              agent_process, settings,
                                                              tmp_path):
    use_filesystem(settings, tmp_path / "objects")
    registered, _buyer, key = parties
    agent = agent_process(live_server.url, registered.token)
    wait_isolated(registered.node.pk)
    job_id = submit(live_server.url, key, ["sh", "-c", COUNTER, "counter", "300", "0.01"])
    place(registered.node.pk)
    wait_until(lambda: "tick 00100" in read_log(live_server.url, key, job_id), 60,
               "100 lines in")
    agent.kill_hard()
    spooled = (tmp_path / "agent-state").rglob("log-*.bytes")
    [spool] = list(spooled)
    before_kill = spool.read_bytes()
    agent.start()
    wait_until(lambda: Job.objects.get(pk=job_id).state == "succeeded", 90, "the job done")

    # The log holds, in order, every byte the first agent captured (nothing twice), then
    # the command's run under the restarted agent (which starts it over)
    text = read_log(live_server.url, key, job_id)
    assert text.encode().startswith(before_kill)
    ticks = lines_of(text, "O", "tick")
    first = ticks[:before_kill.count(b"\n")]
    assert first == list(range(len(first)))
    assert ticks[len(first):] == list(range(300))
    assert Assignment.objects.filter(job_id=job_id).count() == 1


def test_the_server_down_for_30s_logs_arrive_after(live_server, parties, agent_process,
                                                   settings, tmp_path):
    use_filesystem(settings, tmp_path / "objects")
    registered, _buyer, key = parties
    proxy = CuttableProxy(int(live_server.url.rsplit(":", 1)[1]))
    proxy.restore()
    agent_process(proxy.url, registered.token)
    wait_isolated(registered.node.pk)
    job_id = submit(live_server.url, key, ["sh", "-c", COUNTER, "counter", "400", "0.05"])
    place(registered.node.pk)
    wait_until(lambda: "tick 00010" in read_log(live_server.url, key, job_id), 60,
               "10 lines in")
    proxy.cut()
    cut_at = timezone.now()
    time.sleep(30)
    size_during = len(read_log(live_server.url, key, job_id))
    proxy.restore()
    wait_until(lambda: Job.objects.get(pk=job_id).state == "succeeded", 90, "the job done")
    text = read_log(live_server.url, key, job_id)
    assert lines_of(text, "O", "tick") == list(range(400))
    assert len(text) > size_during  # what was printed while cut off arrived after
    finished_at = Job.objects.get(pk=job_id).finished_at
    assert finished_at is not None
    assert finished_at > cut_at
    proxy.cut()
