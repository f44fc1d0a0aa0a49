"""On-demand prices move with utilization inside the admin's bounds; every change is
kept. A price is locked when a job or a block is bought."""

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from marketplace.models import PriceHistory
from scheduler.models import GpuClass, Node


@dataclass(frozen=True)
class PriceMove:
    gpu_class: str
    old: int
    new: int
    utilization_permille: int


def class_utilization_permille(gpu_class_id: int) -> int | None:
    totals = Node.objects.filter(gpu_class_id=gpu_class_id, status=Node.Status.ONLINE,
                                 is_approved=True).aggregate(total=Sum("gpu_count"),
                                                             free=Sum("free_gpus"))
    if not totals["total"]:
        return None
    return (totals["total"] - (totals["free"] or 0)) * 1000 // totals["total"]


@transaction.atomic
def prices_adjust() -> list[PriceMove]:
    """One step toward the target utilization for every class with online capacity:
    busier than target (+5 points) raises the rate a step, idler (-5 points) lowers it,
    clamped to [min_rate, max_rate]."""
    target = int(settings.BANK_PRICE_TARGET_UTILIZATION * 1000)
    step = settings.BANK_PRICE_STEP_BPS
    moves = []
    for cls in GpuClass.objects.select_for_update().order_by("id"):
        util = class_utilization_permille(cls.pk)
        if util is None:
            continue
        new = cls.on_demand_rate
        delta = max(1, cls.on_demand_rate * step // 10_000)  # a cheap class still moves
        if util > target + 50:
            new = cls.on_demand_rate + delta
        elif util < target - 50:
            new = cls.on_demand_rate - delta
        new = max(cls.min_rate, min(cls.max_rate, new))
        if new != cls.on_demand_rate or not PriceHistory.objects.filter(gpu_class=cls).exists():
            PriceHistory.objects.create(gpu_class=cls, on_demand_rate=new,
                                        utilization_permille=util)
        if new != cls.on_demand_rate:
            moves.append(PriceMove(cls.name, cls.on_demand_rate, new, util))
            cls.on_demand_rate = new
            cls.save(update_fields=["on_demand_rate", "updated_at"])
    return moves
