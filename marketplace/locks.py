"""Row locks of the bank's products. Every path takes them in this one order, each kind
by ascending key, so concurrent purchases, sell-backs, deposits and accruals never
deadlock on each other:

1. the organization (banking's `organizations_lock`; block purchases take it first, as
   lending does, and `loan_originate` re-takes it for free),
2. a node (scheduler's `nodes_lock`; deposits) or a reservation (sell-backs) or a
   deposit / block row (accrual, SLA sweep),
3. inventory slots of one class, ascending hour (`inventory_slots_lock` below),
4. advances of a provider, ascending id (accrual repayments, defaults),
5. ledger accounts, ascending id (inside `transfer_post` and lending).

Nothing locks slots after accounts: a defaulted deposit's inventory is withdrawn in its
own transaction after the accrual that posted money has committed."""

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
