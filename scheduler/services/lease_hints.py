"""Lease hints: a heartbeat's answer says whether the node's lease changed since the node
last read it, so that a fleet's agents read their leases when there is something to read
rather than after every beat (10,000 nodes beating every ten seconds would otherwise ask
for a thousand leases a second, each a PostgreSQL read through Django).

Redis keeps the set `lease:due` of node ids whose lease changed: work placed on them,
canceled or lost. A change marks its nodes once it commits (and publishes their ids, which
wakes nodes waiting on the lease push); a node's lease read clears its
mark before reading, so a change that commits meanwhile marks it again. Hints exist only
where beats are answered from Redis (write-behind); a beat answered from PostgreSQL
always says the lease is due. A hint lost (Redis unreachable at that moment) costs a
delay, not work: agents read their lease at least every minute whatever the beats say.
"""

import logging
from collections.abc import Iterable

import redis
from django.db import transaction

from scheduler.services.heartbeat_buffer import LEASE_DUE, beat_buffer_enabled, buffer_client

logger = logging.getLogger(__name__)

# Where a change's node ids are published (comma-separated) for the nodes waiting on the
# lease push (scheduler.agent_api.lease_push); a message starting WAIT_PREFIX announces a new
# wait ("w:<node>:<token>") so that an older wait of the same node ends.
LEASE_CHANGED_CHANNEL = "lease:changed"
WAIT_PREFIX = "w:"


def leases_changed(node_ids: Iterable[int]) -> None:
    """Mark the nodes' leases changed once the current transaction commits."""
    ids = sorted(set(node_ids))
    if ids and beat_buffer_enabled():
        transaction.on_commit(lambda: _mark(ids))


def _mark(node_ids: list[int]) -> None:
    try:
        with buffer_client().pipeline(transaction=False) as pipe:
            pipe.sadd(LEASE_DUE, *node_ids)
            pipe.publish(LEASE_CHANGED_CHANNEL, ",".join(map(str, node_ids)))
            pipe.execute()
    except redis.RedisError:
        logger.warning("lease hints unavailable: %d nodes learn of their change within a "
                       "minute", len(node_ids), exc_info=True)


def lease_mark_clear(node_id: int) -> None:
    """The node is reading its lease now (its mark is cleared before the read), or is
    retired."""
    if not beat_buffer_enabled():
        return
    try:
        buffer_client().srem(LEASE_DUE, node_id)
    except redis.RedisError:
        logger.warning("lease hints unavailable", exc_info=True)
