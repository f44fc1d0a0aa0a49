"""An agent that comes back with the same token and state resumes what the lease still
lists, continuing the sequence numbers and the cumulative usage of the run."""

from __future__ import annotations

from pathlib import Path

from .conftest import NodeFactory
from .fake_server import FakeAgentServer, wait_for


def test_new_agent_with_same_token_resumes_a_leased_assignment(
    server: FakeAgentServer, make_node: NodeFactory, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    # Given a node that ran 1+ s of a 3-second job on 2 GPUs, then went away
    server.add_assignment(1, 70, gpu_count=2, job_id=7, spec={"simulate": {"seconds": 3}})
    first = make_node(state_dir=state)
    wait_for(lambda: any(u["gpu_seconds"] >= 2 for u in server.usage_of(70)))
    first.stop(timeout=5)
    before = server.usage_of(70)
    assert 70 not in server.completed

    # When a new agent starts with the same token and state, and the lease still lists it
    make_node(state_dir=state)

    # Then it resumes the run and completes it once, with usage that never went back
    wait_for(lambda: 70 in server.completed, timeout=20)
    usage = server.usage_of(70)
    assert usage[: len(before)] == before
    seqs = [u["seq"] for u in usage]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(usage) > len(before)
    gpu_seconds = [u["gpu_seconds"] for u in usage]
    assert gpu_seconds == sorted(gpu_seconds)
    [done] = server.completed[70]
    assert done["seq"] == seqs[-1] + 1
    assert done["gpu_seconds"] == 6


def test_undelivered_final_report_is_sent_by_the_next_agent(
    server: FakeAgentServer, make_node: NodeFactory, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    # Given a job that finished while the server was down, and the agent then stopped
    server.add_assignment(1, 80, gpu_count=1, spec={"simulate": {"seconds": 1}})
    first = make_node(state_dir=state)
    wait_for(lambda: len(server.usage_of(80)) >= 1)
    server.unavailable = True
    wait_for(lambda: 80 in first.runs and first.runs[80].record.final is not None, timeout=20)
    first.stop(timeout=5)
    server.unavailable = False
    assert 80 not in server.completed

    # When the next agent starts with the same state
    second = make_node(state_dir=state)

    # Then it delivers the pending complete once, and never runs the job again
    wait_for(lambda: 80 in server.completed, timeout=20)
    wait_for(lambda: len(server.calls_to("/lease/")) >= 1)
    assert len(server.completed[80]) == 1
    assert server.completed[80][0]["gpu_seconds"] == 1
    assert 80 in second.finished
