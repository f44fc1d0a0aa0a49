"""Advances: a provider borrows against the remaining expected yield of its deposits."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Sum

from banking.errors import IdempotencyConflict
from banking.locks import organizations_lock
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.services.ledger import require_positive_tokens, system_account, transfer_post
from banking.services.payable import payable_earn
from banking.services.transactions import money_transaction
from banking.standing import Act, organization_assert_may_act
from marketplace.errors import AdvanceLimitExceeded
from marketplace.locks import idempotency_key_lock
from marketplace.models import Advance
from marketplace.services.deposits import remaining_expected_yield
from marketplace.services.sla_penalties import sla_penalties_outstanding


@dataclass(frozen=True)
class AdvanceLimit:
    remaining_expected_yield: int
    outstanding: int
    available: int


def advance_limit(*, provider_id: int) -> AdvanceLimit:
    """BANK_ADVANCE_SHARE_BPS of what the provider's deposits on nodes with a verified
    history earn in the next BANK_ADVANCE_HORIZON_DAYS if online, less what is owed."""
    remaining = remaining_expected_yield(
        provider_id, horizon=timedelta(days=settings.BANK_ADVANCE_HORIZON_DAYS),
        verified_only=True)
    outstanding = Advance.objects.filter(provider_id=provider_id,
                                         status=Advance.Status.OPEN).aggregate(
        s=Sum("outstanding"))["s"] or 0
    cap = remaining * settings.BANK_ADVANCE_SHARE_BPS // 10_000
    # Penalties still open come out of future yield first, so they are not lent against.
    owed = outstanding + sla_penalties_outstanding(provider_id)
    return AdvanceLimit(remaining, outstanding, max(0, cap - owed))


@money_transaction
def advance_create(*, provider_id: int, amount: int, idempotency_key: str) -> Advance:
    require_positive_tokens(amount)
    idempotency_key_lock("advance", idempotency_key)
    existing = Advance.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.provider_id != provider_id or existing.amount != amount:
            raise IdempotencyConflict("This idempotency key was used for another advance.",
                                      fields={"idempotency_key": ["Already used."]})
        return existing
    organizations_lock([provider_id])
    organization_assert_may_act(provider_id, Act.ADVANCE)
    limit = advance_limit(provider_id=provider_id)
    if amount > limit.available:
        raise AdvanceLimitExceeded(
            f"You can draw at most {limit.available} tokens now "
            f"({settings.BANK_ADVANCE_SHARE_BPS // 100}% of {limit.remaining_expected_yield} "
            f"expected in the next {settings.BANK_ADVANCE_HORIZON_DAYS} days on nodes with "
            f"{settings.BANK_ADVANCE_HISTORY_DAYS} days of verified history, less "
            f"{limit.outstanding} outstanding).",
            fields={"amount": [f"At most {limit.available}."], "available": limit.available},
        )
    advance = Advance.objects.create(provider_id=provider_id, amount=amount, outstanding=amount,
                                     idempotency_key=idempotency_key)
    wallet = organization_account_ids(provider_id)[AccountPurpose.WALLET]
    transfer_post(kind=TransferKind.ADVANCE, idempotency_key=f"advance:{advance.pk}",
                  legs=[(system_account(AccountPurpose.BANK_CAPACITY).pk, -amount),
                        (wallet, amount)],
                  reference=f"advance:{advance.pk}", memo="advance on expected yield")
    payable_earn(organization_id=provider_id, amount=amount,
                 idempotency_key=f"advance:{advance.pk}", reference=f"advance:{advance.pk}",
                 memo="advance drawn")
    return advance
