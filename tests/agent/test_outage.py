"""While the server is down the agent keeps its work running, backs off, and once the
server is back delivers the final report exactly once."""

from __future__ import annotations

import itertools
import logging
import re
import time

import pytest

from .conftest import FAST, NodeFactory
from .fake_server import FakeAgentServer, wait_for


def _delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    pattern = re.compile(r"server unreachable .* - retrying in ([\d.]+)s")
    return [float(m.group(1)) for r in caplog.records if (m := pattern.search(r.getMessage()))]


def test_server_down_then_back_final_complete_arrives_once(
    server: FakeAgentServer, make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="suanli.agent")
    # Given a node running a 3-second simulated job on 2 GPUs
    server.add_assignment(1, 60, gpu_count=2, spec={"simulate": {"seconds": 3}})
    node = make_node()
    wait_for(lambda: len(server.usage_of(60)) >= 1)

    # When the server answers 503 for a while, then stops listening at all,
    server.unavailable = True
    time.sleep(1.5)
    server.go_down()
    time.sleep(2.0)
    # the job finished locally meanwhile, with nobody to tell
    assert 60 not in node.runs or not node.runs[60].working
    assert 60 not in server.completed

    # and then the server comes back on the same port
    server.unavailable = False
    server.come_back()

    # Then the complete arrives, once, with the full usage
    wait_for(lambda: 60 in server.completed, timeout=20)
    time.sleep(1.5)
    assert len(server.completed[60]) == 1
    assert server.completed[60][0]["gpu_seconds"] == 6
    seqs = [u["seq"] for u in server.usage_of(60)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert server.completed[60][0]["seq"] == seqs[-1] + 1
    # and the node is heartbeating again
    wait_for(lambda: any(c.status == 200 for c in server.calls_to("/heartbeat/")[-2:]))

    # The node loop backed off exponentially (jittered), up to the cap, and logged it.
    delays = _delays(caplog)
    assert len(delays) >= 3
    assert all(0 < d <= FAST.backoff_cap_s for d in delays)
    assert all(b >= a or a > FAST.backoff_cap_s / 2 for a, b in itertools.pairwise(delays))
    messages = [r.getMessage() for r in caplog.records]
    assert any("503 unavailable" in m for m in messages)
    assert any("ConnectError" in m for m in messages)
    assert any("complete of assignment 60 not delivered" in m for m in messages)
    assert any("server reachable again" in m for m in messages)
