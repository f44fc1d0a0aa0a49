"""With lease hints, an agent reads its lease when a beat says it changed (and at least
every `lease_at_least_s`), not after every beat; work still starts and stops on time."""

from __future__ import annotations

import dataclasses
import itertools

from .conftest import FAST, NodeFactory
from .fake_server import FakeAgentServer, wait_for


def _leases(server: FakeAgentServer) -> int:
    return len(server.calls_to("/lease/"))


def _beats(server: FakeAgentServer) -> int:
    return len(server.calls_to("/heartbeat/"))


def test_an_agent_reads_its_lease_only_when_told_and_runs_what_it_is_given(
    server: FakeAgentServer, make_node: NodeFactory
) -> None:
    server.hints = True
    node = make_node()
    wait_for(lambda: _beats(server) >= 4, timeout=20)
    assert _leases(server) == 1  # the first, and nothing since: nothing changed

    server.add_assignment(1, 100, spec={"simulate": {"seconds": 30}})
    wait_for(lambda: len(server.usage_of(100)) >= 1, timeout=20)
    server.order_kill(100)
    wait_for(lambda: 100 not in node.runs, timeout=20)  # stopped within a beat or two
    beats = _beats(server)
    wait_for(lambda: _beats(server) >= beats + 3, timeout=20)

    assert _leases(server) == 3  # the first, the work, the kill
    assert 100 not in server.completed


def test_a_server_without_hints_is_asked_after_every_beat(
    server: FakeAgentServer, make_node: NodeFactory
) -> None:
    make_node()
    wait_for(lambda: _beats(server) >= 4, timeout=20)

    assert _leases(server) >= _beats(server) - 1


def test_the_lease_is_read_at_least_every_so_often_whatever_the_beats_say(
    server: FakeAgentServer, make_node: NodeFactory
) -> None:
    server.hints = True
    make_node(config=dataclasses.replace(FAST, lease_at_least_s=2.0))
    wait_for(lambda: _leases(server) >= 3, timeout=20)

    leases = [c.at for c in server.calls_to("/lease/")]
    assert all(b - a >= 1.9 for a, b in itertools.pairwise(leases))
    assert _beats(server) > _leases(server)


def test_work_waiting_for_gpus_starts_when_they_free_without_a_new_lease(
    server: FakeAgentServer, make_node: NodeFactory
) -> None:
    server.hints = True
    server.add_assignment(1, 100, spec={"simulate": {"seconds": 1}}, gpu_count=4)
    server.add_assignment(1, 101, spec={"simulate": {"seconds": 1}}, gpu_count=4)
    make_node(gpus=4)

    wait_for(lambda: 100 in server.completed and 101 in server.completed, timeout=30)

    assert _leases(server) == 1
