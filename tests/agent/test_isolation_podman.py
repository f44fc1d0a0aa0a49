"""A stranger's command, run by a real agent in real podman, tries to get out, and cannot.

Each job's command makes an escape attempt, prints what it got to stderr and exits 3, so
that its failure report carries what it saw; every test would fail if isolation broke
(the token read, a host process seen, a connection made, the fork bomb or the memory hog
unbounded)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from suanli_agent.containers import ContainerRuntime
from suanli_agent.runner import WorkloadPolicy

from .conftest import FAST, NodeFactory
from .fake_server import FakeAgentServer, wait_for
from .podman_setup import IMAGE, TEST_LIMITS, containers_named, podman, podman_machine

pytestmark = pytest.mark.slow
__all__ = ["podman", "podman_machine"]  # fixtures used by name

TOKEN = "nt_node_secret-token-value"


@pytest.fixture
def contained(podman: ContainerRuntime, tmp_path: Path) -> WorkloadPolicy:
    return WorkloadPolicy(container=podman, default_image=IMAGE, work_root=tmp_path / "runs",
                          pull_timeout_s=30)


def _failure(server: FakeAgentServer, assignment_id: int, timeout: float = 90) -> str:
    wait_for(lambda: assignment_id in server.failed, timeout=timeout)
    [failed] = server.failed[assignment_id]
    return str(failed["reason"])


def _escape(server: FakeAgentServer, make_node: NodeFactory, policy: WorkloadPolicy,
            script: str, *, assignment_id: int = 1, **spec: object) -> str:
    server.add_assignment(1, assignment_id,
                          spec={"command": f"{{ {script} ; }} 2>&1 | tail -n 10 >&2; exit 3",
                                **spec})
    make_node(policy=policy)
    reason = _failure(server, assignment_id)
    assert reason.startswith("exit code 3: ")
    return reason.removeprefix("exit code 3: ")


def test_a_job_cannot_read_the_agents_token_file_or_state(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy,
        tmp_path: Path) -> None:
    # Given the agent's token in a 0600 file and its state directory, both on the host
    token_file = tmp_path / "node-token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "assignment-1.json").write_text('{"secret": "state"}')
    # When the job looks for them where they are on the host, and in its environment
    reason = _escape(server, make_node, contained,
                     f"cat {token_file}; ls {state}; cat {state}/assignment-1.json; "
                     "env | grep -c SUANLI_NODE; "
                     "grep -rl secret-token /bin /etc /tmp /suanli 2>/dev/null | wc -l")
    # Then nothing of them is there
    assert TOKEN not in reason and "state" not in reason.replace(str(state), "")
    assert f"cat: can't open '{token_file}': No such file or directory" in reason
    assert f"ls: {state}: No such file or directory" in reason
    assert reason.splitlines()[-2:] == ["0", "0"]  # no SUANLI_NODE* variable, no file


def test_a_job_sees_none_of_the_hosts_processes(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy) -> None:
    marker = subprocess.Popen(["sleep", "4242"])
    try:
        reason = _escape(server, make_node, contained,
                         "ps -o pid,args | grep -c . ; ps -o args | grep -c 'slee[p] 4242'; "
                         "ls /proc | grep -c '^[0-9]'; kill -0 1 && echo pid1 is mine; id -u")
    finally:
        marker.kill()
        marker.wait()
    lines = reason.splitlines()
    # a handful of the job's own processes; no sleep 4242, which runs on the host
    assert int(lines[0]) <= 6
    assert lines[1] == "0"
    assert int(lines[2]) <= 6
    assert "pid1 is mine" in reason
    assert lines[-1] == "0"  # root inside, but in its own user namespace (next test)


def test_container_root_is_not_host_root(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy) -> None:
    assert contained.container is not None
    reason = _escape(server, make_node, contained, "cat /proc/self/uid_map; "
                     "cat /proc/self/status | grep -E '^Cap(Eff|Prm|Bnd)'; "
                     "grep NoNewPrivs /proc/self/status; grep Seccomp: /proc/self/status")
    lines = reason.splitlines()
    inside, outside, _ = lines[0].split()
    if contained.container.userns == "auto":
        assert (inside, outside) == ("0", "2147483647")  # a sub-uid, never host uid 0
    else:
        assert (inside, outside) != ("0", "0")
    assert lines[1:4] == ["CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
                          "CapBnd:\t0000000000000000"]
    assert lines[4] == "NoNewPrivs:\t1"
    assert lines[5] == "Seccomp:\t2"  # the runtime's default filter


def test_a_job_reads_and_writes_nothing_of_the_host_outside_suanli_and_tmp(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy,
        tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    planted = tmp_path / "planted.txt"
    reason = _escape(
        server, make_node, contained,
        f"cat {secret}; echo owned > {planted} && echo wrote-planted; "
        "echo x > /suanli/mine && echo wrote-suanli; echo y > /tmp/t && echo wrote-tmp; "
        "cat /etc/shadow; ls /home /root /var 2>&1 | head -3; mount | grep -c suanli")
    assert "host secret" not in reason
    assert f"cat: can't open '{secret}': No such file or directory" in reason
    assert "wrote-suanli" in reason and "wrote-tmp" in reason
    # a path outside /suanli is the container's own layer, discarded with it
    assert not planted.exists()
    assert secret.read_text() == "host secret"
    assert reason.splitlines()[-1] == "1"  # one host mount: /suanli


def test_a_job_cannot_read_another_running_jobs_files_or_environment(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy) -> None:
    # Given job 1 with a secret in its environment and in its own /suanli
    server.add_assignment(1, 1, spec={
        "command": "echo alpha-file > /suanli/secret; sleep 60",
        "environment": {"SECRET": "alpha-env"}})
    node = make_node(policy=contained)
    wait_for(lambda: 1 in node.runs and getattr(node.runs[1].execution, "job_dir", None)
             is not None and len(server.usage_of(1)) >= 1, timeout=60)
    other_dir = node.runs[1].execution.job_dir  # type: ignore[union-attr]
    wait_for(lambda: (other_dir / "secret").exists(), timeout=30)
    # When job 2, on the same node at the same time, looks for them
    server.add_assignment(1, 2, spec={"command": (
        f"{{ cat {other_dir}/secret; ls /suanli; cat /proc/*/environ | tr '\\0' '\\n' | "
        "grep -c alpha; grep -rl alpha-file /bin /etc /tmp /suanli 2>/dev/null | wc -l; } "
        "2>&1 | tail -n 10 >&2; exit 3")})
    reason = _failure(server, 2)
    # Then it finds neither
    assert "alpha" not in reason.replace("grep -c alpha", "")
    assert f"cat: can't open '{other_dir}/secret': No such file or directory" in reason
    assert reason.splitlines()[-2:] == ["0", "0"]
    assert 1 not in server.failed and 1 not in server.completed  # job 1 still runs
    server.order_kill(1)
    wait_for(lambda: not node.runs, timeout=30)


@pytest.fixture
def listener() -> Iterator[tuple[str, int, list[str]]]:
    """A TCP server on the host's own address that records who connects."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))
        host = probe.getsockname()[0]
    finally:
        probe.close()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen(8)
    server.settimeout(0.2)
    seen: list[str] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, address = server.accept()
            except OSError:
                continue
            seen.append(address[0])
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield host, server.getsockname()[1], seen
    done.set()
    thread.join(2)
    server.close()


def test_a_job_with_network_none_opens_no_tcp_connection(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy,
        listener: tuple[str, int, list[str]]) -> None:
    host, port, seen = listener
    # the listener answers from the host itself
    with socket.create_connection((host, port), timeout=5):
        pass
    wait_for(lambda: len(seen) == 1, timeout=5)
    reason = _escape(server, make_node, contained,
                     f"nc -w 2 {host} {port} </dev/null && echo connected-host; "
                     f"nc -w 2 10.0.2.2 {port} </dev/null && echo connected-gateway; "
                     "ip -o link | grep -vc ': lo:'")
    assert "connected" not in reason
    assert reason.splitlines()[-1] == "0"  # no interface but loopback
    time.sleep(0.5)
    assert seen == [host]  # only the test's own connection


def test_a_fork_bomb_stops_at_the_pids_limit(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy) -> None:
    # The bomb's shell dies when it cannot fork; the job's first shell then counts what is
    # left with builtins only (it could not fork either).
    server.add_assignment(1, 1, spec={"command": (
        "( i=0; while [ $i -lt 300 ]; do sleep 30 & i=$((i+1)); done; echo unbounded ) "
        "2>/dev/null; set -- /proc/[0-9]*; echo \"$# processes\" >&2; exit 3")})
    make_node(policy=contained)
    reason = _failure(server, 1)
    count = int(reason.removeprefix("exit code 3: ").split()[0])
    assert "unbounded" not in reason
    assert 10 < count <= TEST_LIMITS.pids


def test_a_memory_hog_fails_with_out_of_memory_and_the_node_takes_the_next_job(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy) -> None:
    server.add_assignment(1, 1, spec={
        "command": "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"})
    node = make_node(policy=contained)
    reason = _failure(server, 1)
    assert reason == "out_of_memory: the container was killed at its memory limit of 64 MiB"
    # the node is still online and runs the next job
    server.add_assignment(1, 2, spec={"command": ["true"]})
    wait_for(lambda: 2 in server.completed, timeout=60)
    assert node.status == "online" and not node.stopping


def _container_gone_within(prefix: str, seconds: float) -> float:
    started = time.monotonic()
    wait_for(lambda: not containers_named(prefix), timeout=seconds, interval=0.2)
    return time.monotonic() - started


def test_cancel_stops_the_container_within_the_grace_period(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy) -> None:
    server.add_assignment(1, 7, spec={"command": "trap '' TERM; sleep 600"})
    node = make_node(policy=contained)
    wait_for(lambda: containers_named("suanli-a7-") and len(server.usage_of(7)) >= 1,
             timeout=60)
    server.order_kill(7)
    # the lease read that carries the order comes within a beat; then grace (1 s) + removal
    _container_gone_within("suanli-a7-", FAST.heartbeat_s + FAST.kill_grace_s + 15)
    wait_for(lambda: not node.runs, timeout=15)
    assert 7 not in server.completed and 7 not in server.failed


def test_lease_loss_stops_the_container_within_the_grace_period(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy) -> None:
    server.add_assignment(1, 8, spec={"command": ["sleep", "600"]})
    node = make_node(policy=contained)
    wait_for(lambda: containers_named("suanli-a8-") and len(server.usage_of(8)) >= 1,
             timeout=60)
    with server.lock:  # the server gave the job to another node: no longer in this lease
        server.assignments.pop(8)
        server.lease_due.add(1)
    _container_gone_within("suanli-a8-", FAST.heartbeat_s + FAST.kill_grace_s + 15)
    wait_for(lambda: not node.runs, timeout=15)


@pytest.mark.parametrize("image", ["--privileged", "-v/:/host", "Busybox", "a b", "x@sha256:1"])
def test_the_agent_refuses_a_malformed_image_before_anything_starts(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy,
        image: str) -> None:
    server.add_assignment(1, 5, spec={"command": "id", "image": image})
    make_node(policy=contained)
    reason = _failure(server, 5)
    assert reason.startswith("invalid spec: spec.image: ")
    assert server.usage_of(5) == []  # nothing ran, nothing was metered
    assert containers_named("suanli-a5-") == []


def test_a_missing_or_refused_image_fails_with_image_pull_failed(
        server: FakeAgentServer, make_node: NodeFactory, podman: ContainerRuntime,
        tmp_path: Path) -> None:
    policy = WorkloadPolicy(container=podman, default_image=IMAGE, pull_timeout_s=20,
                            allowed_registries=("localhost", "registry.example.com"),
                            work_root=tmp_path / "runs")
    server.add_assignment(1, 1, spec={"command": "id", "image": "localhost/not-here:1"})
    server.add_assignment(1, 2, spec={"command": "id", "image": "ghcr.io/acme/x:1"})
    make_node(policy=policy)
    missing, refused = _failure(server, 1), _failure(server, 2)
    assert missing.startswith("image_pull_failed: localhost/not-here:1: ")
    assert refused == ("image_pull_failed: registry ghcr.io is not among this node's allowed "
                       "registries (localhost, registry.example.com)")
    # the clock never started for either
    assert server.usage_of(1) == [] and server.usage_of(2) == []
    assert server.failed[1][0]["gpu_seconds"] == 0


def test_the_default_image_runs_and_its_digest_is_reported_and_secrets_files_are_private(
        server: FakeAgentServer, make_node: NodeFactory, contained: WorkloadPolicy) -> None:
    server.add_assignment(1, 3, spec={"command": "sleep 2", "environment": {"K": "v"}})
    node = make_node(policy=contained)
    wait_for(lambda: len(server.usage_of(3)) >= 1, timeout=60)
    execution = node.runs[3].execution
    run_dir = Path(execution.job_dir).parent  # type: ignore[union-attr]
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((run_dir / "env").stat().st_mode) == 0o600
    assert (run_dir / "env").read_text().splitlines()[0] == "K=v"
    first = server.usage_of(3)[0]
    assert first["image"] == IMAGE
    assert first["image_digest"].startswith("sha256:") and len(first["image_digest"]) == 71
    wait_for(lambda: 3 in server.completed, timeout=60)
    wait_for(lambda: not run_dir.exists(), timeout=10)  # env file and job dir removed
    beats = [c.body for c in server.calls_to("/heartbeat/") if "isolation" in c.body]
    assert beats[0]["isolation"] == {
        "kind": "container", "runtime": "podman", "runtime_version": contained.container.version,  # type: ignore[union-attr]
        "network": "none", "host_execution": False, "default_image": IMAGE}


def test_without_a_runtime_commands_never_run_on_the_host_unless_allowed(
        server: FakeAgentServer, make_node: NodeFactory, tmp_path: Path) -> None:
    touched = tmp_path / "ran-on-host"
    server.add_assignment(1, 4, spec={"command": f"touch {touched}"})
    make_node(policy=WorkloadPolicy())
    reason = _failure(server, 4)
    assert reason == ("invalid spec: this node has no container runtime and does not run "
                      "commands on its host")
    assert not touched.exists()
    beats = [c.body for c in server.calls_to("/heartbeat/") if "isolation" in c.body]
    assert beats[0]["isolation"] == {"kind": "none", "runtime": "", "runtime_version": "",
                                     "network": "none", "host_execution": False}
    assert os.path.exists(tmp_path)
