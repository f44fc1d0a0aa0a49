"""Row locks of the bank's products. Every path takes them in this one order, each kind
by ascending key, so concurrent purchases, sell-backs, deposits and accruals never
deadlock on each other:

1. the organization (banking's `organizations_lock`; block purchases take it first, as
   lending does, and `loan_originate` re-takes it for free),
2. a node (scheduler's `nodes_lock`; deposits) or a reservation (sell-backs) or a
   deposit / block row (accrual, SLA sweep),
3. inventory slots of one class, ascending hour (`inventory_slots_lock` below),
4. advances of a provider, ascending id (accrual repayments, defaults), then its SLA
   penalties, ascending id,
5. ledger accounts, ascending id (inside `transfer_post` and lending).

0. before all of these, a purchase, sell-back, deposit or advance with an idempotency key
   takes `idempotency_key_lock(scope, key)` so two requests with one key run one after
   the other and the second returns the first's row instead of hitting the unique index.

Nothing locks slots after accounts: a defaulted deposit's inventory is withdrawn in its
own transaction after the accrual that posted money has committed."""

from collections.abc import Iterable
from datetime import datetime

from django.db import connection

from marketplace.models import InventorySlot


def idempotency_key_lock(scope: str, key: str) -> None:
    """A transaction-scoped PostgreSQL advisory lock on (scope, key), taken first. Other
    databases (SQLite in the embedded demo) serialize writers anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))",
                           [f"marketplace:{scope}", key])


def inventory_slots_lock(gpu_class_id: int, slot_starts: Iterable[datetime]
                         ) -> dict[datetime, InventorySlot]:
    """Lock (creating the missing ones) the class's inventory rows for these hours, in
    ascending hour order."""
    starts = sorted(set(slot_starts))
    # One INSERT ... ON CONFLICT DO NOTHING for the missing hours, in ascending order (a
    # 720-hour block makes one statement, not 720 savepoints); a concurrent creator's row
    # is waited for and then locked below.
    existing = set(InventorySlot.objects.filter(gpu_class_id=gpu_class_id, slot_start__in=starts)
                   .values_list("slot_start", flat=True))
    missing = [InventorySlot(gpu_class_id=gpu_class_id, slot_start=start)
               for start in starts if start not in existing]
    if missing:
        InventorySlot.objects.bulk_create(missing, ignore_conflicts=True, batch_size=1000)
    rows = (InventorySlot.objects.select_for_update()
            .filter(gpu_class_id=gpu_class_id, slot_start__in=starts).order_by("slot_start"))
    return {r.slot_start: r for r in rows}
