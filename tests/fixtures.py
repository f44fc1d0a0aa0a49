"""Fixtures shared across the suites: organizations on both sides of the market, online
nodes, an agent's API client."""

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from banking.models import Organization
from scheduler.models import GpuClass, Node
from scheduler.services.node_isolation import node_isolation_record
from scheduler.services.nodes import node_heartbeat, node_register


@pytest.fixture
def h100(db: None) -> GpuClass:
    return GpuClass.objects.get(name="H100-80GB")


@pytest.fixture
def provider(make_org: Callable[..., Organization]) -> Organization:
    return make_org(provider=True, buyer=False)


@pytest.fixture
def buyer(make_org: Callable[..., Organization]) -> Organization:
    return make_org(tokens=10_000_000_000)


@pytest.fixture
def online_node(provider: Organization) -> Callable[..., Node]:
    counter = {"n": 0}

    def make(gpu_class: str = "H100-80GB", gpus: int = 8, region: str = "eu-west",
             owner: Organization | None = None, isolation: dict[str, Any] | None = None,
             **kw: Any) -> Node:
        counter["n"] += 1
        registered = node_register(provider_id=(owner or provider).pk,
                                   name=f"node-{counter['n']}", gpu_class=gpu_class,
                                   gpu_count=gpus, region=region, **kw)
        node_heartbeat(node_id=registered.node.pk, free_gpus=gpus, busy_gpus=0,
                       utilization=0.0, agent_version="test")
        # A working node runs commands in containers unless a test says otherwise.
        node_isolation_record(node_id=registered.node.pk, isolation=isolation or {
            "kind": "container", "runtime": "podman", "runtime_version": "4.3.1"})
        # What its agent's nvidia-smi inventory would report.
        Node.objects.filter(pk=registered.node.pk).update(gpus_reported=gpus)
        node = Node.objects.get(pk=registered.node.pk)
        node.token = registered.token  # type: ignore[attr-defined]
        return node

    return make


@pytest.fixture
def agent_client() -> Callable[[Node], APIClient]:
    def make(node: Node) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Node {node.token}")  # type: ignore[attr-defined]
        return client

    return make
