"""Penalties of deposits that failed to deliver (marketplace.services.sla assesses them):
repaid from the provider's yield after its advances, or owed at once when no yield is
left. Row locks: a provider's penalties after its advances, before accounts
(marketplace.locks)."""

from django.db.models import Sum

from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.services.ledger import system_account, transfer_post
from marketplace.models import SlaPenalty
from marketplace.services.repayment import repay_oldest_first


def sla_penalties_repay(provider_id: int, amount: int) -> int:
    """Yield repays open penalties, oldest first; returns what was withheld."""
    return repay_oldest_first(
        SlaPenalty.objects.select_for_update().filter(
            provider_id=provider_id, status=SlaPenalty.Status.OPEN).order_by("id"),
        amount, repaid=SlaPenalty.Status.REPAID)


def sla_penalties_owe(*, provider_id: int) -> int:
    """What is still open is owed at once: the bank takes it from the provider's debt
    account (negative = owed), which blocks spending and payouts until it is repaid."""
    owed = 0
    debt = organization_account_ids(provider_id)[AccountPurpose.DEBT]
    capacity = system_account(AccountPurpose.BANK_CAPACITY).pk
    for penalty in SlaPenalty.objects.select_for_update().filter(
            provider_id=provider_id, status=SlaPenalty.Status.OPEN).order_by("id"):
        transfer_post(kind=TransferKind.SLA_CREDIT, idempotency_key=f"sla-penalty:{penalty.pk}",
                      legs=[(debt, -penalty.outstanding), (capacity, penalty.outstanding)],
                      reference=f"deposit:{penalty.deposit_id}",
                      memo="SLA penalty owed: the deposit did not deliver")
        owed += penalty.outstanding
        penalty.outstanding = 0
        penalty.status = SlaPenalty.Status.OWED
        penalty.save(update_fields=["outstanding", "status", "updated_at"])
    return owed


def sla_penalties_outstanding(provider_id: int) -> int:
    return SlaPenalty.objects.filter(provider_id=provider_id, status=SlaPenalty.Status.OPEN
                                     ).aggregate(s=Sum("outstanding"))["s"] or 0
