"""A node the server has not approved yet keeps heartbeating at the normal pace and
starts work as soon as it is approved."""

from __future__ import annotations

import itertools
import logging

import pytest

from .conftest import NodeFactory
from .fake_server import FakeAgentServer, wait_for


def test_pending_node_heartbeats_until_approved_then_runs_work(
    server: FakeAgentServer, make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="suanli.agent")
    # Given a node pending approval, with work already waiting for it
    server.pending_nodes.add(1)
    server.add_assignment(1, 100, spec={"simulate": {"seconds": 0}})
    node = make_node()
    wait_for(lambda: len(server.calls_to("/heartbeat/")) >= 3, timeout=20)

    # Then it heartbeats once a second (no backoff) and says once that leasing is refused
    beats = [c.at for c in server.calls_to("/heartbeat/")]
    assert all(0.8 <= b - a <= 2.0 for a, b in itertools.pairwise(beats))
    refusals = [r for r in caplog.records if "lease refused" in r.getMessage()]
    assert len(refusals) == 1
    assert "node status pending" in refusals[0].getMessage()
    assert node.status == "pending"
    assert 100 not in server.completed

    # When the node is approved, it runs the work
    server.pending_nodes.clear()
    wait_for(lambda: 100 in server.completed, timeout=20)
    wait_for(lambda: node.status == "online", timeout=20)
