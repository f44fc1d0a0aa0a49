"""One repayment rule for what a provider owes the bank in rows (advances, SLA
penalties): oldest first, each row's outstanding reduced and closed at zero."""

from collections.abc import Iterable
from typing import Any


def repay_oldest_first(rows: Iterable[Any], amount: int, *, repaid: str) -> int:
    """Apply `amount` to locked rows with `outstanding` and `status`, in the order given;
    returns what was applied."""
    left = amount
    for row in rows:
        if left == 0:
            break
        part = min(left, row.outstanding)
        row.outstanding -= part
        if row.outstanding == 0:
            row.status = repaid
        row.save(update_fields=["outstanding", "status", "updated_at"])
        left -= part
    return amount - left
