"""Jobs with an image run through the container runtime when one answers. The runtime
here is a stand-in `docker` on PATH that records its arguments and runs the command on
the host, so the agent's side (arguments, environment file, GPUs, stop and removal) is
exercised for real; a live Docker daemon is not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from scheduler.agent.containers import ContainerRuntimeError, detect_runtime

from .conftest import NodeFactory
from .fake_server import FakeAgentServer, wait_for

FAKE_DOCKER = """#!{python}
import json, os, sys
log = {log!r}
args = sys.argv[1:]
with open(log, "a") as f:
    f.write(json.dumps(args) + "\\n")
if args[0] != "run":
    sys.exit(0)
env, mounts, i = {{"PATH": os.environ["PATH"]}}, {{}}, 1
while args[i].startswith("--"):
    if args[i] == "--rm":
        i += 1
        continue
    opt, val = args[i], args[i + 1]
    if opt == "--env-file":
        for line in open(val):
            k, _, v = line.rstrip("\\n").partition("=")
            env[k] = v
    if opt == "--volume":
        host, _, inside = val.partition(":")
        mounts[inside] = host
    i += 2
argv = args[i + 1:]
for k, v in env.items():
    for inside, host in mounts.items():
        env[k] = v.replace(inside, host)
os.execvpe(argv[0], argv, env)
"""


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "docker.log"
    script = bindir / "docker"
    script.write_text(FAKE_DOCKER.format(python=sys.executable, log=str(log)))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    return log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_image_runs_in_the_container_runtime_with_its_gpus_and_environment(
    server: FakeAgentServer, make_node: NodeFactory, fake_docker: Path, tmp_path: Path
) -> None:
    # Given a node whose runtime answers and whose GPUs are real (passed to containers)
    runtime = detect_runtime("auto", pass_gpus=True)
    assert runtime is not None and runtime.kind == "docker"
    out = tmp_path / "seen.txt"
    script = (
        f'echo "${{CUDA_VISIBLE_DEVICES:-unset}} $MODEL $SUANLI_JOB_ID" > {out}; '
        'echo 7 > "$SUANLI_AI_TOKENS_FILE"'
    )
    server.add_assignment(
        1,
        90,
        gpu_count=2,
        job_id=5,
        spec={"command": script, "image": "nvcr.io/acme/train:1", "environment": {"MODEL": "m7"}},
    )
    node = make_node(start=False)
    node.container = runtime
    node.start()

    # When it runs the job
    wait_for(lambda: 90 in server.completed)

    # Then docker ran the image with only GPUs 0 and 1 and the job's environment
    [run] = [c for c in _calls(fake_docker) if c[0] == "run"]
    assert run[:3] == ["run", "--rm", "--name"]
    assert run[3].startswith("suanli-a90-")
    assert run[run.index("--gpus") + 1] == '"device=0,1"'
    assert run[run.index("--volume") + 1].endswith(":/suanli")
    image_at = run.index("nvcr.io/acme/train:1")
    assert run[image_at + 1 :] == ["/bin/sh", "-c", script]
    assert out.read_text().split() == ["unset", "m7", "5"]
    assert server.completed[90][0]["ai_tokens"] == 7


def test_kill_order_stops_and_removes_the_container(
    server: FakeAgentServer, make_node: NodeFactory, fake_docker: Path
) -> None:
    runtime = detect_runtime("docker", pass_gpus=False)
    server.add_assignment(1, 91, spec={"command": ["sleep", "60"], "image": "busybox"})
    node = make_node(start=False)
    node.container = runtime
    node.start()
    wait_for(lambda: len(server.usage_of(91)) >= 1)

    server.order_kill(91)

    wait_for(lambda: 91 not in node.runs, timeout=20)
    # and the GPU is released only once the container is stopped and removed
    assert node.pool.free_count == 4
    assert [c[0] for c in _calls(fake_docker)] == ["info", "run", "stop", "rm"]
    [run] = [c for c in _calls(fake_docker) if c[0] == "run"]
    assert "--gpus" not in run
    name = run[3]
    assert [c for c in _calls(fake_docker) if c[0] in ("stop", "rm")] == [
        ["stop", "--time", "1", name],
        ["rm", "--force", name],
    ]
    assert 91 not in server.completed and 91 not in server.failed


def test_runtime_asked_for_by_name_must_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert detect_runtime("auto", pass_gpus=False) is None
    with pytest.raises(ContainerRuntimeError, match="'podman' not found or not answering"):
        detect_runtime("podman", pass_gpus=False)
