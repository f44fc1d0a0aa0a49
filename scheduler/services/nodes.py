"""Node registration, approval, heartbeats and the provider's changes to a node."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from banking.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from banking.models import Organization
from scheduler.errors import NodeBusy
from scheduler.models import ACTIVE_ASSIGNMENT_STATES, Assignment, GpuClass, Node, NodeHeartbeat
from scheduler.services.classes import gpu_class_by_name

TOKEN_PREFIX = "nt"


@dataclass(frozen=True)
class RegisteredNode:
    node: Node
    token: str  # shown once


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _require_count(value: Any, name: str, *, minimum: int = 1, maximum: int = 1024) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(f"{name} must be a whole number from {minimum} to {maximum}.",
                           fields={name: [f"{minimum} to {maximum}."]})
    return value


@transaction.atomic
def node_register(
    *,
    provider_id: int,
    name: str,
    gpu_class: str,
    gpu_count: int,
    vram_gb: int | None = None,
    region: str,
    labels: dict[str, Any] | None = None,
    mode: str = Node.Mode.MARKET,
    rate_per_gpu_hour: int | None = None,
) -> RegisteredNode:
    provider = Organization.objects.filter(pk=provider_id).first()
    if provider is None or not provider.is_provider:
        raise PermissionDenied("Only provider organizations register nodes.")
    cls = gpu_class_by_name(gpu_class)
    _require_count(gpu_count, "gpu_count", maximum=64)
    vram = cls.vram_gb if vram_gb is None else _require_count(vram_gb, "vram_gb", maximum=4096)
    if mode not in Node.Mode.values:
        raise InvalidInput(f"mode is one of {', '.join(Node.Mode.values)}.",
                           fields={"mode": ["Unknown mode."]})
    if rate_per_gpu_hour is not None:
        _check_rate(cls, rate_per_gpu_hour)
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("A node needs a name of at most 100 characters.",
                           fields={"name": ["Required."]})
    region = region.strip()
    if not region:
        raise InvalidInput("A node needs a region.", fields={"region": ["Required."]})
    prefix = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    approved = bool(settings.SCHEDULER_AUTO_APPROVE_NODES)
    try:
        with transaction.atomic():
            node = Node.objects.create(
                provider=provider,
                name=name,
                gpu_class=cls,
                gpu_count=gpu_count,
                free_gpus=gpu_count,
                vram_gb=vram,
                region=region,
                labels=labels or {},
                mode=mode,
                rate_per_gpu_hour=rate_per_gpu_hour,
                is_approved=approved,
                status=Node.Status.OFFLINE if approved else Node.Status.PENDING,
                token_prefix=prefix,
                token_hash=_hash(token),
            )
    except IntegrityError as exc:
        raise Conflict(f"You already have a node named {name!r}.",
                       fields={"name": ["Already used."]}) from exc
    return RegisteredNode(node=node, token=token)


def _check_rate(cls: GpuClass, rate: Any) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise InvalidInput("rate_per_gpu_hour must be a positive whole number of tokens.",
                           fields={"rate_per_gpu_hour": ["Positive whole number."]})
    if not cls.min_rate <= rate <= cls.max_rate:
        raise InvalidInput(
            f"rate_per_gpu_hour must be within {cls.min_rate}..{cls.max_rate} for {cls.name}.",
            fields={"rate_per_gpu_hour": [f"{cls.min_rate}..{cls.max_rate}"]},
        )


def node_authenticate(raw: str) -> Node | None:
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    node = Node.objects.filter(token_prefix=parts[1]).first()
    if node is None or not hmac.compare_digest(node.token_hash, _hash(raw.strip())):
        return None
    return node


def _provider_node(provider_id: int, node_id: int) -> Node:
    node = Node.objects.select_for_update().filter(pk=node_id, provider_id=provider_id).first()
    if node is None:
        raise NotFound("Node not found.")
    return node


@transaction.atomic
def node_update(
    *, provider_id: int, node_id: int, drain: bool | None = None,
    rate_per_gpu_hour: int | None = None, clear_rate: bool = False,
) -> Node:
    node = _provider_node(provider_id, node_id)
    fields = ["updated_at"]
    if drain is True and node.status in (Node.Status.ONLINE, Node.Status.OFFLINE,
                                         Node.Status.PENDING):
        node.status = Node.Status.DRAINING
        fields.append("status")
    elif drain is False and node.status == Node.Status.DRAINING:
        node.status = Node.Status.OFFLINE if node.is_approved else Node.Status.PENDING
        fields.append("status")
    if rate_per_gpu_hour is not None:
        _check_rate(node.gpu_class, rate_per_gpu_hour)
        node.rate_per_gpu_hour = rate_per_gpu_hour
        fields.append("rate_per_gpu_hour")
    elif clear_rate:
        node.rate_per_gpu_hour = None
        fields.append("rate_per_gpu_hour")
    node.save(update_fields=fields)
    return node


@transaction.atomic
def node_retire(*, provider_id: int, node_id: int) -> None:
    """Remove an idle node. One with work on it must be drained first."""
    node = _provider_node(provider_id, node_id)
    if Assignment.objects.filter(node=node, state__in=ACTIVE_ASSIGNMENT_STATES).exists():
        raise NodeBusy("This node is running work: drain it first, then delete it.")
    if Assignment.objects.filter(node=node).exists():
        node.status = Node.Status.DISABLED
        node.token_hash = ""  # its token stops working; its history stays
        node.save(update_fields=["status", "token_hash", "updated_at"])
    else:
        node.delete()


@transaction.atomic
def node_approve(*, node_id: int) -> Node:
    node = Node.objects.select_for_update().filter(pk=node_id).first()
    if node is None:
        raise NotFound("Node not found.")
    if not node.is_approved:
        node.is_approved = True
        if node.status == Node.Status.PENDING:
            node.status = Node.Status.OFFLINE
        node.save(update_fields=["is_approved", "status", "updated_at"])
    return node


@transaction.atomic
def node_drain(*, node_id: int) -> Node:
    node = Node.objects.select_for_update().filter(pk=node_id).first()
    if node is None:
        raise NotFound("Node not found.")
    if node.status != Node.Status.DISABLED:
        node.status = Node.Status.DRAINING
        node.save(update_fields=["status", "updated_at"])
    return node


@dataclass(frozen=True)
class HeartbeatResult:
    status: str
    next_heartbeat_s: int
    freed_capacity: bool


def node_heartbeat(
    *, node_id: int, free_gpus: int, busy_gpus: int, utilization: float, agent_version: str
) -> HeartbeatResult:
    """Record that the node is alive: it turns online (if approved), its active leases are
    extended, and the beat is kept as evidence of availability."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.SCHEDULER_NODE_TIMEOUT_S)
    utilization = max(0.0, min(1.0, float(utilization)))
    minute = now.replace(second=0, microsecond=0)
    if connection.vendor == "postgresql":
        # The agent API's hottest path: one statement, one round trip. It turns an approved
        # node online, extends its leases and keeps one heartbeat row per minute (the
        # evidence of availability), and says what the status was before.
        with connection.cursor() as cursor:
            cursor.execute(
                """
                WITH old AS (SELECT id, status FROM scheduler_node WHERE id = %(node)s
                             FOR UPDATE),
                node AS (
                    UPDATE scheduler_node AS n SET
                        status = CASE WHEN n.is_approved AND n.status IN ('offline', 'pending')
                                      THEN 'online' ELSE n.status END,
                        last_heartbeat_at = %(now)s, utilization = %(util)s,
                        agent_version = %(version)s
                    FROM old WHERE n.id = old.id
                    RETURNING n.status, old.status AS was),
                leases AS (
                    UPDATE scheduler_assignment SET lease_expires_at = %(lease)s
                    WHERE node_id = %(node)s AND state IN ('placed', 'running')),
                beat AS (
                    INSERT INTO scheduler_nodeheartbeat (node_id, at, free_gpus, busy_gpus)
                    VALUES (%(node)s, %(minute)s, %(free)s, %(busy)s)
                    ON CONFLICT (node_id, at) DO NOTHING)
                SELECT status, was FROM node
                """,
                {"node": node_id, "now": now, "util": utilization, "version": agent_version[:64],
                 "lease": lease, "minute": minute, "free": max(0, free_gpus),
                 "busy": max(0, busy_gpus)},
            )
            status, was = cursor.fetchone()
    else:
        with transaction.atomic():
            node = Node.objects.select_for_update().get(pk=node_id)
            was = node.status
            if node.is_approved and was in (Node.Status.OFFLINE, Node.Status.PENDING):
                node.status = Node.Status.ONLINE
            node.last_heartbeat_at, node.utilization = now, utilization
            node.agent_version = agent_version[:64]
            node.save(update_fields=["status", "last_heartbeat_at", "utilization",
                                     "agent_version", "updated_at"])
            Assignment.objects.filter(node_id=node_id, state__in=ACTIVE_ASSIGNMENT_STATES
                                      ).update(lease_expires_at=lease)
            NodeHeartbeat.objects.get_or_create(
                node_id=node_id, at=minute,
                defaults={"free_gpus": max(0, free_gpus), "busy_gpus": max(0, busy_gpus)})
            status = node.status
    turned_online = status == Node.Status.ONLINE and was != Node.Status.ONLINE
    return HeartbeatResult(
        status=status,
        next_heartbeat_s=settings.SCHEDULER_HEARTBEAT_INTERVAL_S,
        # GPUs freed by finished work already asked for placement; a node that just came
        # online brings capacity nobody has asked about yet.
        freed_capacity=turned_online,
    )


def node_reliability_lower(*, node_id: int, by: int) -> None:
    Node.objects.filter(pk=node_id, reliability__gte=by).update(
        reliability=F("reliability") - by)
    Node.objects.filter(pk=node_id, reliability__lt=by).update(reliability=0)
