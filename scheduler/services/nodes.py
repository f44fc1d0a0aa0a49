"""Node registration, approval, heartbeats and the provider's changes to a node."""

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from banking.audit import audit_record
from banking.models import AuditAction, Organization
from core.database import server_bound_cursor
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.sql_names import compose
from scheduler.errors import NodeBusy
from scheduler.models import ACTIVE_ASSIGNMENT_STATES, Assignment, GpuClass, Node
from scheduler.services.classes import gpu_class_by_name
from scheduler.services.heartbeat_buffer import beat_buffer_forget
from scheduler.services.heartbeat_write import HeartbeatResult, node_heartbeat
from scheduler.services.lease_hints import lease_mark_clear
from scheduler.services.node_tokens import (
    TOKEN_PREFIX,
    NodeToken,
    node_token_lookup,
    token_hash,
)


@dataclass(frozen=True)
class RegisteredNode:
    node: Node
    token: str  # shown once


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
                token_hash=token_hash(token),
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
    token = NodeToken.parse(raw)
    if token is None:
        return None
    return node_token_lookup(token, lambda: _node_by_token(token))


def _node_by_token(token: NodeToken) -> Node | None:
    node = Node.objects.filter(token_prefix=token.prefix).first()
    if node is None or not hmac.compare_digest(node.token_hash, token.hash):
        return None
    return node


_NODE_BY_TOKEN = compose("""
SELECT {Node.id} FROM {Node}
WHERE {Node.token_prefix} = %(prefix)s AND {Node.token_hash} = %(hash)s
  AND {Node.status} <> {Node.Status.DISABLED}
""", Node)


def node_id_authenticate(raw: str) -> int | None:
    """The id of the node this token is of, unless the node is disabled: what an agent's
    hottest calls need of authentication, in one prepared statement (the token hash is
    compared by PostgreSQL, as the heartbeat's statement explains)."""
    token = NodeToken.parse(raw)
    if token is None:
        return None
    return node_token_lookup(token, lambda: node_id_by_token(token))


def node_id_by_token(token: NodeToken) -> int | None:
    if connection.vendor != "postgresql":
        node = _node_by_token(token)
        return node.pk if node is not None and node.status != Node.Status.DISABLED else None
    with server_bound_cursor() as cursor:
        cursor.execute(_NODE_BY_TOKEN, {"prefix": token.prefix, "hash": token.hash},
                       prepare=True)
        row = cursor.fetchone()
    return int(row[0]) if row else None


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
    token_hash = node.token_hash
    if Assignment.objects.filter(node=node).exists():
        node.status = Node.Status.DISABLED
        node.token_hash = ""  # its token stops working; its history stays
        node.save(update_fields=["status", "token_hash", "updated_at"])
    else:
        node.delete()
    transaction.on_commit(lambda: beat_buffer_forget(token_hash))
    transaction.on_commit(lambda: lease_mark_clear(node_id))


@transaction.atomic
def node_token_rotate(*, provider_id: int, node_id: int) -> str:
    """A new token for the node (shown once); the old one stops working."""
    node = _provider_node(provider_id, node_id)
    old_hash = node.token_hash
    prefix = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    node.token_prefix = prefix
    node.token_hash = token_hash(token)
    node.save(update_fields=["token_prefix", "token_hash", "updated_at"])
    transaction.on_commit(lambda: beat_buffer_forget(old_hash))
    return token


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
        audit_record(action=AuditAction.NODE_APPROVED, organization_id=node.provider_id,
                     target=f"node:{node.pk}", detail={"name": node.name})
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


@transaction.atomic
def node_disable(*, node_id: int, flag: str, now: datetime | None = None) -> bool:
    """Take a node out of service for an operator to look at, flagged with why: its token
    stops working at once (every door refuses a disabled node), so its runs' leases lapse
    and the lease sweep places their jobs elsewhere. False when it was disabled already."""
    now = now or timezone.now()
    node = Node.objects.select_for_update().filter(pk=node_id).first()
    if node is None:
        raise NotFound("Node not found.")
    if node.status == Node.Status.DISABLED:
        return False
    node.status, node.flag, node.flagged_at = Node.Status.DISABLED, flag, now
    node.save(update_fields=["status", "flag", "flagged_at", "updated_at"])
    token_hash = node.token_hash
    transaction.on_commit(lambda: beat_buffer_forget(token_hash))
    transaction.on_commit(lambda: lease_mark_clear(node_id))
    return True


def node_reliability_lower(*, node_id: int, by: int) -> None:
    """Superseded by scheduler.services.reliability.node_fault_record, which keeps the
    fault as evidence so the score can recover; kept for callers not moved yet."""
    Node.objects.filter(pk=node_id, reliability__gte=by).update(
        reliability=F("reliability") - by)
    Node.objects.filter(pk=node_id, reliability__lt=by).update(reliability=0)


# The heartbeat write is its own service (scheduler.services.heartbeat_write); its callers
# have long found it here.
__all__ = ["HeartbeatResult", "node_heartbeat"]
