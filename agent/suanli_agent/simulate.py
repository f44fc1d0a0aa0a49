"""A fleet of simulated nodes in one process: register each with the provider's key, then
run them side by side, each with its own token, fake GPUs and thread."""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass

from suanli_agent.client import (
    AgentClient,
    AgentClientError,
    Backoff,
    ProviderClient,
    retry_until_answered,
)
from suanli_agent.config import AgentConfig
from suanli_agent.gpus import fake_gpus
from suanli_agent.node import Node
from suanli_agent.state import RunStateStore

logger = logging.getLogger("suanli.agent")


class RegistrationError(Exception):
    """The server refused to register a node (bad key, bad fields...)."""


@dataclass(frozen=True)
class RegisteredNode:
    id: int
    name: str
    token: str
    status: str


@dataclass(frozen=True)
class FleetSpec:
    count: int
    gpu_class: str
    gpus: int
    vram_gb: int
    region: str
    name_prefix: str = "sim"


def register_nodes(
    *,
    server: str,
    provider_key: str,
    fleet: FleetSpec,
    config: AgentConfig,
    stop: threading.Event,
) -> list[RegisteredNode]:
    """Register ``fleet.count`` nodes, retrying while the server is unreachable.

    Names are ``<prefix>-<run id>-<n>`` so repeated runs do not collide.
    """
    run_id = secrets.token_hex(2)
    client = ProviderClient(server=server, api_key=provider_key, timeout_s=config.http_timeout_s)
    backoff = Backoff(base_s=config.backoff_base_s, cap_s=config.backoff_cap_s)
    registered: list[RegisteredNode] = []

    def on_retry(error: AgentClientError, delay: float) -> None:
        logger.warning("server unreachable (%s) - retrying in %.1fs", error, delay)

    try:
        for n in range(1, fleet.count + 1):
            name = f"{fleet.name_prefix}-{run_id}-{n:02d}"
            try:
                answer = retry_until_answered(
                    lambda name=name: client.register_node(  # type: ignore[misc]
                        name=name,
                        gpu_class=fleet.gpu_class,
                        gpu_count=fleet.gpus,
                        vram_gb=fleet.vram_gb,
                        region=fleet.region,
                        labels={"simulated": "true"},
                    ),
                    backoff=backoff,
                    stop=stop,
                    on_retry=on_retry,
                )
            except AgentClientError as error:
                raise RegistrationError(f"registering node {name} failed: {error}") from error
            if answer is None:
                break
            try:
                node = RegisteredNode(
                    id=int(answer["id"]),
                    name=str(answer.get("name") or name),
                    token=str(answer["token"]),
                    status=str(answer.get("status", "?")),
                )
            except (KeyError, TypeError, ValueError) as error:
                raise RegistrationError(
                    f"unexpected answer registering node {name}: missing {error}"
                ) from error
            logger.info(
                "registered node %s (id %s, status %s, %s x %s, %s)",
                node.name,
                node.id,
                node.status,
                fleet.gpus,
                fleet.gpu_class,
                fleet.region,
            )
            registered.append(node)
    finally:
        client.close()
    return registered


def build_fleet(
    *,
    server: str,
    nodes: list[RegisteredNode],
    fleet: FleetSpec,
    config: AgentConfig,
) -> list[Node]:
    return [
        Node(
            client=AgentClient(server=server, token=node.token, timeout_s=config.http_timeout_s),
            gpus=fake_gpus(fleet.gpus, name=fleet.gpu_class, memory_mb=fleet.vram_gb * 1024),
            name=node.name,
            config=config,
            store=RunStateStore(),
        )
        for node in nodes
    ]


def run_fleet(nodes: list[Node], stop: threading.Event) -> None:
    """Run every node in its own thread until ``stop`` is set, then stop them all.

    Starts are spread over one heartbeat interval so a large fleet does not beat in step.
    """
    spread = min(0.2, nodes[0].config.heartbeat_s / len(nodes)) if nodes else 0.0
    for node in nodes:
        node.start()
        if stop.wait(spread):
            break
    stop.wait()
    logger.info("stopping %s simulated nodes", len(nodes))
    for node in nodes:
        node.stop()
