"""Fixtures of the node agent tests: a fake agent server and fast-ticking nodes.

Nothing here needs Django or a database; run with ``pytest tests/agent -p no:django``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from suanli_agent.client import AgentClient
from suanli_agent.config import AgentConfig
from suanli_agent.gpus import fake_gpus
from suanli_agent.node import Node
from suanli_agent.runner import WorkloadPolicy
from suanli_agent.state import RunStateStore

from .fake_server import FakeAgentServer

FAST = AgentConfig(
    heartbeat_s=0.5,
    usage_interval_s=0.4,
    kill_grace_s=1.0,
    backoff_base_s=0.2,
    backoff_cap_s=1.0,
    http_timeout_s=2.0,
    # The fake server holds no lease waits; the push is tested against the real agents'
    # server (tests/scheduler/test_lease_push.py).
    lease_wait_s=0,
)

# These tests are about the agent's loop, not isolation: its commands run on the host, as
# only a provider's own jobs may (test_isolation_podman.py runs them in containers).
HOST_POLICY = WorkloadPolicy(allow_host_execution=True)

NodeFactory = Callable[..., Node]


@pytest.fixture
def server() -> Iterator[FakeAgentServer]:
    fake = FakeAgentServer(next_heartbeat_s=1)
    fake.start()
    yield fake
    fake.go_down()


@pytest.fixture
def make_node(server: FakeAgentServer, tmp_path: Path) -> Iterator[NodeFactory]:
    """Start a node with token ``token`` (registered as node ``node_id``) and 4 fake GPUs."""
    nodes: list[Node] = []

    def make(
        *,
        token: str = "node-token-1",
        node_id: int = 1,
        gpus: int = 4,
        state_dir: Path | None = None,
        config: AgentConfig = FAST,
        start: bool = True,
        policy: WorkloadPolicy = HOST_POLICY,
    ) -> Node:
        server.register_token(token, node_id)
        node = Node(
            client=AgentClient(server=server.url, token=token, timeout_s=config.http_timeout_s),
            gpus=fake_gpus(gpus, name="H100-80GB", memory_mb=80 * 1024),
            name=f"test-node-{node_id}",
            config=config,
            store=RunStateStore(state_dir),
            policy=policy,
        )
        nodes.append(node)
        if start:
            node.start()
        return node

    yield make
    for node in nodes:
        if not node.stopping:
            node.stop(timeout=5)
