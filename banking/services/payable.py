"""The payable balance: what an organization may cash out.

Only tokens earned as a provider are payable: captures received on its open-market
nodes, availability yield, advances drawn. Top-ups and grants are spent, never cashed out
(a buyer leaves through a card refund); a sell-back refunds a purchase and is not
payable either. Each earning posts, besides the transfer that moves the tokens, an
`earned` transfer `payable_issued -> payable`; a payout request debits `payable` back
(kind `payout`) and a failed or rejected payout reverses that debit. The payable account
has floor 0, so nobody is paid out more than it earned, and `payable_verify`
(banking.invariants) recomputes it from its sources.

A payout may take at most min(payable, wallet): earnings already spent are not there to
cash out.

Lock order: the transfer that touches the wallet (capture, yield, hold) is posted first,
the payable transfer after it, in the same transaction: wallet accounts are always locked
before payable accounts, so earnings and payouts never deadlock each other."""

from collections.abc import Iterable

from banking.error_codes import BankingErrorCode
from banking.models import Account, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.services.ledger import (
    TransferSpec,
    system_account,
    transfer_post,
    transfer_reverse,
    transfer_spec,
    transfers_post_batch,
)
from core.errors import DomainError


class NotPayable(DomainError):
    code: str = BankingErrorCode.NOT_PAYABLE
    status = 402


def payable_account(organization_id: int) -> Account:
    account, _ = Account.objects.get_or_create(
        organization_id=organization_id, purpose=AccountPurpose.PAYABLE, defaults={"floor": 0})
    return account


def payable_earn_spec(*, organization_id: int, amount: int, idempotency_key: str,
                      reference: str, memo: str) -> TransferSpec:
    return transfer_spec(
        kind=TransferKind.EARNED, idempotency_key=f"earned:{idempotency_key}",
        legs=[(system_account(AccountPurpose.PAYABLE_ISSUED).pk, -amount),
              (payable_account(organization_id).pk, amount)],
        reference=reference, memo=memo)


def payable_earn(*, organization_id: int, amount: int, idempotency_key: str, reference: str,
                 memo: str) -> None:
    """Record `amount` tokens just credited to the organization's wallet as earned.
    Posted after the transfer that credited them, in its transaction."""
    if amount <= 0:
        return
    spec = payable_earn_spec(organization_id=organization_id, amount=amount,
                             idempotency_key=idempotency_key, reference=reference, memo=memo)
    transfer_post(kind=spec.kind, idempotency_key=spec.idempotency_key,
                  legs=[(leg.account_id, leg.amount) for leg in spec.legs],
                  reference=spec.reference, memo=spec.memo)


def payable_earn_batch(specs: Iterable[TransferSpec]) -> None:
    batch = list(specs)
    if batch:
        transfers_post_batch(batch)


def payable_available(organization_id: int) -> int:
    balances = dict(Account.objects.filter(
        organization_id=organization_id,
        purpose__in=[AccountPurpose.PAYABLE, AccountPurpose.WALLET],
    ).values_list("purpose", "balance"))
    return max(0, min(balances.get(AccountPurpose.PAYABLE, 0),
                      balances.get(AccountPurpose.WALLET, 0)))


def payable_check(*, organization_id: int, tokens: int) -> None:
    """Refuse with `not_payable` a payout beyond min(payable, wallet), read without locks
    (`payable_take` checks again under its lock)."""
    _refuse_beyond(payable_available(organization_id), tokens)


def _refuse_beyond(available: int, tokens: int) -> None:
    if tokens > available:
        raise NotPayable(
            f"Only {available} tokens are payable: tokens earned as a provider less what was "
            "paid out. Top-ups and grants are spent on compute, not cashed out.",
            fields={"tokens": [f"At most {available}."], "payable": available})


def payable_take(*, organization_id: int, tokens: int, idempotency_key: str,
                 reference: str) -> Transfer:
    """Debit `tokens` of the payable balance for a payout (after its hold is placed).
    Refused with `not_payable` beyond min(payable, wallet before the hold)."""
    payable = payable_account(organization_id)
    # Lock the payable row: two payouts racing read one balance; the floor refuses the
    # second in the ledger anyway, this gives it the right code.
    balance = Account.objects.select_for_update().values_list("balance", flat=True).get(
        pk=payable.pk)
    wallet = Account.objects.values_list("balance", flat=True).get(
        organization_id=organization_id, purpose=AccountPurpose.WALLET)
    _refuse_beyond(max(0, min(balance, wallet + tokens)), tokens)
    return transfer_post(
        kind=TransferKind.PAYOUT, idempotency_key=f"payable:{idempotency_key}",
        legs=[(payable.pk, -tokens), (system_account(AccountPurpose.PAYABLE_ISSUED).pk, tokens)],
        reference=reference, memo="payable tokens taken for a payout")


def payable_restore(*, idempotency_key: str, memo: str) -> None:
    """A payout that failed or was rejected gives its payable tokens back."""
    taken = Transfer.objects.filter(idempotency_key=f"payable:{idempotency_key}").first()
    if taken is None or Transfer.objects.filter(reverses=taken).exists():
        return
    transfer_reverse(transfer_id=taken.pk, idempotency_key=f"payable-restore:{idempotency_key}",
                     memo=memo)
