"""What a node's agent says about how it runs buyers' commands: container runtime and
version, the network it offers jobs, host execution of its own organization's jobs, its
default image. Placement reads it (``placement._may_run``), and so do the catalog, the
node API, the portal and the admin.

Agents send it with their first heartbeat, after every reconnection and once in a while;
such beats take the synchronous way (not the write-behind buffer), and the row is written
only when something changed.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from scheduler.models import Node


def node_isolation_record(*, node_id: int, isolation: dict[str, Any]) -> bool:
    """Store what the node's agent reported (already checked by the heartbeat's
    serializer); True if it changed."""
    kind = isolation.get("kind", Node.Isolation.NONE)
    values = {
        "isolation": kind,
        "container_runtime": isolation.get("runtime", "") if kind == Node.Isolation.CONTAINER
        else "",
        "runtime_version": isolation.get("runtime_version", "")
        if kind == Node.Isolation.CONTAINER else "",
        # The internet is offered only from inside a container: a host runs as it is.
        "network": isolation.get("network", Node.Network.NONE)
        if kind == Node.Isolation.CONTAINER else Node.Network.NONE,
        "host_execution": bool(isolation.get("host_execution", False))
        and kind == Node.Isolation.NONE,
        "default_image": isolation.get("default_image", "") if kind == Node.Isolation.CONTAINER
        else "",
    }
    same = Q(**values)
    return Node.objects.filter(pk=node_id).exclude(same).update(**values) > 0


def container_nodes() -> Q:
    """The nodes other organizations' commands may run on (what the catalog counts)."""
    return Q(isolation=Node.Isolation.CONTAINER)
