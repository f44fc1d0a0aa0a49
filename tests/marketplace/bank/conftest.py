from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from banking.models import Organization
from scheduler.models import Node, NodeHeartbeat
from scheduler.services.nodes import node_register
from tests.scheduler.conftest import (  # noqa: F401  the scheduler's autouse fixtures
    _auto_approve_and_eager_kicks,
    _no_broker,
)


def next_hour(hours: int = 1) -> datetime:
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    return now + timedelta(hours=hours)


def beat_every_minute(node: Node, start: datetime, end: datetime) -> None:
    """Heartbeats as an online agent leaves them: one (or more) every minute."""
    rows = []
    t = start
    while t < end:
        rows.append(NodeHeartbeat(node=node, at=t + timedelta(seconds=5), free_gpus=0,
                                  busy_gpus=node.gpu_count))
        t += timedelta(minutes=1)
    NodeHeartbeat.objects.bulk_create(rows)


def verified_history(node: Node, days: int = 7) -> None:
    """A heartbeat every hour of the last `days` days: the history an advance needs."""
    now = timezone.now()
    NodeHeartbeat.objects.bulk_create(
        [NodeHeartbeat(node=node, at=now - timedelta(hours=h, minutes=30), free_gpus=0,
                       busy_gpus=node.gpu_count) for h in range(days * 24)],
        ignore_conflicts=True)


@pytest.fixture
def bank_node(provider: Organization) -> Callable[..., Node]:
    counter = {"n": 0}

    def make(gpus: int = 8, gpu_class: str = "H100-80GB", **kw: Any) -> Node:
        counter["n"] += 1
        registered = node_register(provider_id=provider.pk, name=f"bank-{counter['n']}",
                                   gpu_class=gpu_class, gpu_count=gpus, region="eu-west",
                                   mode=Node.Mode.BANK, **kw)
        Node.objects.filter(pk=registered.node.pk).update(gpus_reported=gpus)
        registered.node.gpus_reported = gpus
        return registered.node

    return make
