"""Row locks of the marketplace, in one order: inventory slots (by class, then hour),
then what banking and the scheduler lock."""

from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction

from marketplace.models import InventorySlot


def inventory_slots_lock(gpu_class_id: int, slot_starts: Iterable[datetime]
                         ) -> dict[datetime, InventorySlot]:
    """Lock (creating the missing ones) the class's inventory rows for these hours, in
    ascending hour order."""
    starts = sorted(set(slot_starts))
    existing = set(InventorySlot.objects.filter(gpu_class_id=gpu_class_id, slot_start__in=starts)
                   .values_list("slot_start", flat=True))
    for start in starts:
        if start not in existing:
            try:
                with transaction.atomic():
                    InventorySlot.objects.create(gpu_class_id=gpu_class_id, slot_start=start)
            except IntegrityError:
                pass  # a concurrent creator made it; it is locked below
    rows = (InventorySlot.objects.select_for_update()
            .filter(gpu_class_id=gpu_class_id, slot_start__in=starts).order_by("slot_start"))
    return {r.slot_start: r for r in rows}
