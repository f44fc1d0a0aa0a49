"""What a node's agent says it has: the GPUs nvidia-smi lists, sent in its heartbeats.
A node is given work, and may deposit capacity, only up to what it reports, however many
GPUs its provider declared."""

from typing import Any

from scheduler.models import Node

MAX_REPORTED_GPUS = 4096


def node_inventory_record(*, node_id: int, gpus: list[Any]) -> None:
    """Keep the count of GPUs the agent lists; one UPDATE, and only when it changed."""
    count = min(len(gpus), MAX_REPORTED_GPUS)
    Node.objects.filter(pk=node_id).exclude(gpus_reported=count).update(gpus_reported=count)


def usable_free_gpus(*, gpu_count: int, free_gpus: int, gpus_reported: int | None) -> int:
    """Free GPUs placement may hand out: a node reporting fewer GPUs than it declared gets
    work only on what it reports (its busy GPUs count against those)."""
    if gpus_reported is None or gpus_reported >= gpu_count:
        return free_gpus
    return max(0, min(free_gpus, gpus_reported - (gpu_count - free_gpus)))
