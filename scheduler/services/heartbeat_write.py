"""The heartbeat write: one service, one strategy per backend. A node's beat, as it
arrives (`node_heartbeat`: one PostgreSQL statement, or the ORM's same steps on SQLite),
and many nodes' buffered beats at once (`heartbeats_write`, PostgreSQL only: write-behind
needs Redis and PostgreSQL, scheduler.services.heartbeat_buffer). All forms have the same
effects: the node turns online if approved, its active leases are extended, one heartbeat
row per node and minute is kept; none counts as an edit of the node (`updated_at`)."""

import hmac
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.database import server_bound_cursor
from core.sql_names import compose, compose_part, insert_into
from scheduler.models import ACTIVE_ASSIGNMENT_STATES, Assignment, Node, NodeHeartbeat
from scheduler.services.node_rate import (
    ROW_COUNT,
    ROW_COUNTED,
    retry_after_s,
    row_count,
    window_of,
)
from scheduler.services.node_tokens import BeatLimit, NodeToken, node_token_lookup


@dataclass(frozen=True)
class HeartbeatResult:
    node_id: int
    status: str
    next_heartbeat_s: int
    freed_capacity: bool
    retry_after_s: int = 0  # > 0: over the rate limit, the beat was not recorded


# The agent API's hottest path: one statement, one round trip. It finds the node (by id,
# or by its token when the caller is an agent not yet authenticated), counts the beat
# against the node's rate limit and, within the limit, turns an approved node online,
# extends its leases, keeps one heartbeat row per minute (the evidence of availability)
# and says what the status was before.
# A disabled node's token finds nothing. The token hash is compared by PostgreSQL: it is
# a SHA-256 of a 128-bit secret, so the comparison's timing tells nothing about the secret.
# Its commit does not wait for the WAL to reach the disk (synchronous_commit off, for this
# transaction only): a heartbeat moves no money, and if PostgreSQL crashed, the last
# fraction of a second of beats would be lost and simply sent again by the agents ten
# seconds later. Waiting for the disk is most of a heartbeat's time otherwise.
_HEARTBEAT_SQL = """
WITH old AS (
    SELECT n.{Node.id} AS id, n.{Node.status} AS status, {counted} AS counted
    FROM {Node} AS n WHERE {where} FOR UPDATE),
node AS (
    UPDATE {Node} AS n SET
        {count},
        {Node.status} = CASE WHEN old.counted AND n.{Node.is_approved}
                                  AND n.{Node.status} IN ({Node.Status.OFFLINE},
                                                          {Node.Status.PENDING})
                      THEN {Node.Status.ONLINE} ELSE n.{Node.status} END,
        {Node.last_heartbeat_at} = CASE WHEN old.counted THEN %(now)s
                                        ELSE n.{Node.last_heartbeat_at} END,
        {Node.utilization} = CASE WHEN old.counted THEN %(util)s ELSE n.{Node.utilization} END,
        {Node.agent_version} = CASE WHEN old.counted THEN %(version)s
                                    ELSE n.{Node.agent_version} END
    FROM old WHERE n.{Node.id} = old.id
    RETURNING n.{Node.id}, n.{Node.status}, old.status AS was, old.counted),
leases AS (
    UPDATE {Assignment} SET {Assignment.lease_expires_at} = %(lease)s
    WHERE {Assignment.node} = (SELECT id FROM old WHERE counted)
      AND {Assignment.state} IN ({Assignment.State.PLACED}, {Assignment.State.RUNNING})),
beat AS (
    INSERT INTO {beats}
    SELECT id, %(minute)s, %(free)s, %(busy)s FROM old WHERE counted
    ON CONFLICT ({NodeHeartbeat.node}, {NodeHeartbeat.at}) DO NOTHING)
SELECT node.id, node.status, node.was, node.counted FROM node
CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed
"""
_BEATS = insert_into(NodeHeartbeat, "node", "at", "free_gpus", "busy_gpus")
# The count is the node rate's own rule (scheduler.services.node_rate), in this statement.
_COUNTING = {"counted": ROW_COUNTED, "count": ROW_COUNT}
_HEARTBEAT_BY_ID = compose(_HEARTBEAT_SQL, Node, Assignment, NodeHeartbeat, beats=_BEATS,
                           where=compose_part("n.{Node.id} = %(node)s", Node), **_COUNTING)
_HEARTBEAT_BY_TOKEN = compose(
    _HEARTBEAT_SQL, Node, Assignment, NodeHeartbeat, beats=_BEATS, **_COUNTING,
    where=compose_part("n.{Node.token_prefix} = %(prefix)s AND n.{Node.token_hash} = %(hash)s "
                       "AND n.{Node.status} <> {Node.Status.DISABLED}", Node))
_UNLIMITED = BeatLimit(beats=2**31 - 1, window_s=60)


def node_heartbeat(
    *, node_id: int | None = None, token: NodeToken | None = None, free_gpus: int,
    busy_gpus: int, utilization: float, agent_version: str, limit: BeatLimit = _UNLIMITED,
) -> HeartbeatResult | None:
    """Record that the node (given by id, or by the token its agent presented) is alive:
    it turns online (if approved), its active leases are extended, and the beat is kept as
    evidence of availability. A beat over `limit` changes nothing but the count, and says
    when to come back. None when the token matches no usable node."""
    if (node_id is None) == (token is None):
        raise TypeError("Give node_id or token.")
    now = timezone.now()
    epoch_s = int(now.timestamp())
    params: dict[str, Any] = {
        "node": node_id,
        "prefix": token.prefix if token else None, "hash": token.hash if token else None,
        "window": window_of(limit, epoch_s), "beats": limit.beats,
        "now": now, "util": max(0.0, min(1.0, float(utilization))),
        "version": agent_version[:64],
        "lease": now + timedelta(seconds=settings.SCHEDULER_NODE_TIMEOUT_S),
        "minute": now.replace(second=0, microsecond=0),
        "free": max(0, free_gpus), "busy": max(0, busy_gpus),
    }
    strategy = _STRATEGIES[connection.vendor == "postgresql"]
    # An agent's token is looked up behind the guard every token lookup has.
    row = (strategy(params) if token is None
           else node_token_lookup(token, lambda: strategy(params)))
    if row is None:
        return None
    found_id, status, was, counted = row
    turned_online = status == Node.Status.ONLINE and was != Node.Status.ONLINE
    return HeartbeatResult(
        node_id=found_id,
        status=status,
        next_heartbeat_s=settings.SCHEDULER_HEARTBEAT_INTERVAL_S,
        # GPUs freed by finished work already asked for placement; a node that just came
        # online brings capacity nobody has asked about yet.
        freed_capacity=turned_online,
        retry_after_s=0 if counted else retry_after_s(limit, epoch_s),
    )


Row = tuple[int, str, str, bool]  # node id, status now, status before, counted


def _heartbeat_postgresql(p: dict[str, Any]) -> Row | None:
    # A server-side bound, prepared statement (Django binds on the client and sends the
    # whole text every time): PostgreSQL parses and plans it once per connection.
    with server_bound_cursor() as cursor:
        cursor.execute(_HEARTBEAT_BY_ID if p["node"] is not None else _HEARTBEAT_BY_TOKEN, p,
                       prepare=True)
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), str(row[1]), str(row[2]), bool(row[3]))


@transaction.atomic
def _heartbeat_orm(p: dict[str, Any]) -> Row | None:
    """The same as _HEARTBEAT_SQL, for SQLite (the embedded demo). Like the statement,
    it leaves `updated_at` alone: a beat is not an edit of the node
    (tests/scheduler/test_heartbeat_write.py holds the two to the same effects)."""
    nodes = Node.objects.select_for_update()
    if p["node"] is not None:
        node = nodes.filter(pk=p["node"]).first()
    else:
        node = nodes.filter(token_prefix=p["prefix"]).exclude(
            status=Node.Status.DISABLED).first()
        if node is not None and not hmac.compare_digest(node.token_hash, p["hash"]):
            node = None
    if node is None:
        return None
    was = node.status
    counted = row_count(node, p["window"], p["beats"])
    fields = ["beat_window", "beats_in_window"]
    if counted:
        if node.is_approved and was in (Node.Status.OFFLINE, Node.Status.PENDING):
            node.status = Node.Status.ONLINE
        node.last_heartbeat_at, node.utilization = p["now"], p["util"]
        node.agent_version = p["version"]
        fields += ["status", "last_heartbeat_at", "utilization", "agent_version"]
        Assignment.objects.filter(node_id=node.pk, state__in=ACTIVE_ASSIGNMENT_STATES
                                  ).update(lease_expires_at=p["lease"])
        NodeHeartbeat.objects.get_or_create(
            node_id=node.pk, at=p["minute"],
            defaults={"free_gpus": p["free"], "busy_gpus": p["busy"]})
    node.save(update_fields=fields)
    return node.pk, node.status, was, counted


# The write per backend: PostgreSQL's one statement, else the ORM's same steps.
_STRATEGIES = {True: _heartbeat_postgresql, False: _heartbeat_orm}


# One statement for every beat taken: the same effects as the synchronous heartbeat
# (_HEARTBEAT_SQL above), for many nodes, each at its own beat's time.
# Only a node whose token is still the one that beat, and that is not disabled, counts.
# `old` carries each beat's values, so that nothing joins the beats again: the planner
# cannot know how many rows `old` holds, and a nested loop over the beats per node would
# make the flush quadratic.
_FLUSH_SQL = compose("""
WITH v AS (
    SELECT node_id, hash, to_timestamp(at_ms / 1000.0) AS at, free, busy, util, version
    FROM jsonb_to_recordset(%(beats)s::jsonb)
         AS v(node_id bigint, hash text, at_ms bigint, free int, busy int, util float8,
              version text)),
old AS (
    SELECT n.{Node.id} AS id, n.{Node.status} AS status, v.hash, v.at, v.free, v.busy,
           v.util, v.version
    FROM {Node} AS n
    JOIN v ON v.node_id = n.{Node.id} AND v.hash = n.{Node.token_hash}
    WHERE n.{Node.status} <> {Node.Status.DISABLED}
    ORDER BY n.{Node.id} FOR UPDATE OF n),
node AS (
    UPDATE {Node} AS n SET
        {Node.status} = CASE WHEN n.{Node.is_approved}
                                  AND n.{Node.status} IN ({Node.Status.OFFLINE},
                                                          {Node.Status.PENDING})
                      THEN {Node.Status.ONLINE} ELSE n.{Node.status} END,
        {Node.last_heartbeat_at} = GREATEST(old.at, n.{Node.last_heartbeat_at}),
        {Node.utilization} = old.util, {Node.agent_version} = old.version
    FROM old
    WHERE n.{Node.id} = old.id
    RETURNING n.{Node.id} AS id, n.{Node.status} AS status, old.status AS was, old.hash),
leases AS (
    UPDATE {Assignment} AS a
    SET {Assignment.lease_expires_at} = old.at + make_interval(secs => %(timeout)s)
    FROM old
    WHERE a.{Assignment.node} = old.id
      AND a.{Assignment.state} IN ({Assignment.State.PLACED}, {Assignment.State.RUNNING})
      AND (a.{Assignment.lease_expires_at} IS NULL
           OR a.{Assignment.lease_expires_at} < old.at + make_interval(secs => %(timeout)s))),
beat AS (
    INSERT INTO {beats}
    SELECT old.id, date_trunc('minute', old.at), old.free, old.busy FROM old
    ON CONFLICT ({NodeHeartbeat.node}, {NodeHeartbeat.at}) DO NOTHING)
SELECT id, status, was, hash FROM node
""", Node, Assignment, NodeHeartbeat,
    beats=insert_into(NodeHeartbeat, "node", "at", "free_gpus", "busy_gpus"))


# A buffered beat: node id, status Redis answered with, epoch ms, free, busy, util, version.
Beat = tuple[int, str, int, int, int, float, str]


@transaction.atomic
def heartbeats_write(beats: dict[str, Beat]) -> list[tuple[int, str, str, str]]:
    """Many nodes' beats, keyed by token hash, in one statement: (node id, status now,
    status before, token hash) per node written."""
    # One JSON text for all the beats: PostgreSQL reads it faster than the driver can
    # write seven arrays of thousands of values.
    rows = json.dumps([
        {"node_id": node, "hash": token_hash, "at_ms": at_ms, "free": free, "busy": busy,
         "util": util, "version": version}
        for token_hash, (node, _status, at_ms, free, busy, util, version) in beats.items()
    ])
    with connection.cursor() as cursor:
        cursor.execute(_FLUSH_SQL, {"beats": rows, "timeout": settings.SCHEDULER_NODE_TIMEOUT_S})
        return [tuple(row) for row in cursor.fetchall()]
