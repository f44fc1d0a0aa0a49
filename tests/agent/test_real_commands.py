"""Real commands run as subprocesses with the GPUs the agent gave them, and stop when the
server says so or when they outlive their maximum duration."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .conftest import NodeFactory
from .fake_server import FakeAgentServer, wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_kill_order_stops_a_running_command_and_it_is_not_completed(
    server: FakeAgentServer, make_node: NodeFactory, tmp_path: Path
) -> None:
    # Given a node running `sleep 60` for assignment 9
    pidfile = tmp_path / "pid"
    server.add_assignment(
        1, 9, gpu_count=1, spec={"command": ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"]}
    )
    node = make_node()
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    pid = int(pidfile.read_text())
    wait_for(lambda: len(server.usage_of(9)) >= 1)
    assert _alive(pid)

    # When the server orders it killed
    server.order_kill(9)

    # Then the process is gone, its GPU is free again, and no complete or fail was sent
    wait_for(lambda: not _alive(pid), timeout=20)
    wait_for(lambda: 9 not in node.runs and node.pool.free_count == 4, timeout=20)
    time.sleep(0.5)
    assert 9 not in server.completed
    assert 9 not in server.failed
    assert 9 in node.finished  # never started again by this agent


def test_failing_command_reports_its_exit_code_and_sees_its_gpus(
    server: FakeAgentServer, make_node: NodeFactory
) -> None:
    # Given a command that prints the GPUs it was given and exits 3, on 2 GPUs
    server.add_assignment(
        1, 21, gpu_count=2, spec={"command": "sh -c 'echo $CUDA_VISIBLE_DEVICES; exit 3'"}
    )

    # When the node runs it
    make_node()
    wait_for(lambda: 21 in server.failed)

    # Then the failure carries exit code 3 and the command's last output lines
    [failure] = server.failed[21]
    assert failure["exit_code"] == 3
    assert failure["reason"] == "exit code 3: 0,1"
    assert failure["seq"] == server.usage_of(21)[-1]["seq"] + 1
    assert 21 not in server.completed


def test_command_gets_its_environment_and_completes(
    server: FakeAgentServer, make_node: NodeFactory, tmp_path: Path
) -> None:
    # Given a command that writes its environment and an AI token count, on GPUs 1-2 of 4
    out = tmp_path / "env.txt"
    script = (
        f'echo "$CUDA_VISIBLE_DEVICES $MODEL $SUANLI_ASSIGNMENT_ID" > {out}; '
        'echo 42 > "$SUANLI_AI_TOKENS_FILE"; sleep 0.1'
    )
    server.add_assignment(1, 30, gpu_count=1, spec={"simulate": {"seconds": 30}})
    server.add_assignment(
        1,
        31,
        gpu_count=2,
        spec={"command": script, "environment": {"MODEL": "m7"}},
    )

    # When the node runs both
    node = make_node()
    wait_for(lambda: 31 in server.completed, timeout=20)

    # Then the command saw its own GPUs and environment, and its token count was reported
    assert out.read_text().split() == ["1,2", "m7", "31"]
    [done] = server.completed[31]
    assert done["exit_code"] == 0
    assert done["gpu_seconds"] == 0  # 0.1 s: no whole second yet
    assert done["ai_tokens"] == 42
    server.order_kill(30)
    wait_for(lambda: not node.runs)


def test_command_past_its_max_duration_is_stopped_and_failed(
    server: FakeAgentServer, make_node: NodeFactory
) -> None:
    server.add_assignment(1, 40, gpu_count=1, max_duration_s=1, spec={"command": "sleep 30"})
    make_node()
    wait_for(lambda: 40 in server.failed, timeout=20)
    [failure] = server.failed[40]
    assert failure["reason"] == "exceeded max duration of 1s"
    assert failure["exit_code"] is None
    assert failure["gpu_seconds"] == 1


def test_usage_answer_stop_ends_the_run_without_completion(
    server: FakeAgentServer, make_node: NodeFactory
) -> None:
    server.add_assignment(1, 50, gpu_count=1, spec={"simulate": {"seconds": 30}})
    server.stop_on_usage.add(50)
    node = make_node()
    wait_for(lambda: len(server.usage_of(50)) >= 1)
    wait_for(lambda: 50 not in node.runs, timeout=20)
    assert 50 not in server.completed
    assert 50 not in server.failed
