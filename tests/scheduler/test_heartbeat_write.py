"""The heartbeat write's two strategies, PostgreSQL's one statement and the ORM's steps
(SQLite, the embedded demo), have the same effects: run side by side on two like nodes,
each beat leaves both nodes alike, also over the rate limit, and neither counts as an
edit of the node (`updated_at`)."""

from typing import Any

import pytest
from django.db import connection

from scheduler.models import Node, NodeHeartbeat
from scheduler.services import heartbeat_write
from scheduler.services.heartbeat_write import node_heartbeat
from scheduler.services.node_tokens import BeatLimit

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="both strategies side by side"),
]


def _effects(node: Node, before: Node) -> tuple[Any, ...]:
    fresh = Node.objects.get(pk=node.pk)
    return (fresh.status, fresh.utilization, fresh.agent_version, fresh.beats_in_window,
            fresh.last_heartbeat_at != before.last_heartbeat_at,
            fresh.updated_at == before.updated_at,
            NodeHeartbeat.objects.filter(node=node).count())


def test_both_strategies_write_a_beat_alike(online_node, monkeypatch):
    by_statement, by_orm = online_node(), online_node()
    Node.objects.filter(pk__in=[by_statement.pk, by_orm.pk]).update(
        status=Node.Status.OFFLINE, beat_window=0, beats_in_window=0)
    NodeHeartbeat.objects.filter(node__in=[by_statement, by_orm]).delete()
    limit = BeatLimit(beats=2, window_s=3600)
    orm = {True: heartbeat_write._heartbeat_orm, False: heartbeat_write._heartbeat_orm}

    beats: list[dict[str, Any]] = [
        {"free_gpus": 8, "busy_gpus": 0, "utilization": 0.25, "agent_version": "a"},
        {"free_gpus": 6, "busy_gpus": 2, "utilization": 0.75, "agent_version": "b"},
        {"free_gpus": 0, "busy_gpus": 8, "utilization": 1.0, "agent_version": "over"},
    ]
    for n, beat in enumerate(beats):
        before = {x.pk: Node.objects.get(pk=x.pk) for x in (by_statement, by_orm)}
        first = node_heartbeat(node_id=by_statement.pk, limit=limit, **beat)
        with monkeypatch.context() as m:
            m.setattr(heartbeat_write, "_STRATEGIES", orm)
            second = node_heartbeat(node_id=by_orm.pk, limit=limit, **beat)

        assert first is not None and second is not None
        assert (first.status, first.freed_capacity, bool(first.retry_after_s)) == (
            second.status, second.freed_capacity, bool(second.retry_after_s))
        assert _effects(by_statement, before[by_statement.pk]) == _effects(
            by_orm, before[by_orm.pk])
        assert bool(first.retry_after_s) == (n == 2)  # the third is over the limit of two
    assert Node.objects.get(pk=by_orm.pk).agent_version == "b"
    assert Node.objects.get(pk=by_orm.pk).status == Node.Status.ONLINE


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the flush is PostgreSQL's")
def test_the_flushs_record_types_are_the_columns_they_are_written_to(db) -> None:
    """The flush reads its beats with jsonb_to_recordset, whose column list has to name
    types: each must be the type of the column its value is written to (an integer read as
    int into a bigint column, or a float read as an integer, would drift silently)."""
    import re

    declared = re.search(r"AS v\((.*?)\)\)", heartbeat_write._FLUSH_SQL, re.S)
    assert declared is not None
    types = dict(part.split() for part in " ".join(declared[1].split()).split(", "))
    written_to: dict[str, Any] = {"node_id": Node._meta.get_field("id"),
                                  "free": NodeHeartbeat._meta.get_field("free_gpus"),
                                  "busy": NodeHeartbeat._meta.get_field("busy_gpus"),
                                  "util": Node._meta.get_field("utilization")}
    # PostgreSQL's names of the columns' types, as the statement spells them
    spelled = {"bigint": "bigint", "integer": "int", "double precision": "float8"}
    for name, field in written_to.items():
        column_type = str(field.db_type(connection))
        assert types[name] == spelled[column_type], (name, types[name], column_type)
    assert set(types) == {"node_id", "hash", "at_ms", "free", "busy", "util", "version"}
    assert types["hash"] == types["version"] == "text"  # compared to / stored in varchar
