"""Holds: tokens moved from a wallet to its `held` account, then captured in parts to
whoever earned them, the rest released. Every operation is idempotent by key."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from banking.error_codes import BankingErrorCode
from banking.errors import IdempotencyConflict
from banking.locks import accounts_lock, holds_lock
from banking.models import Hold, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.services.ledger import (
    BatchResult,
    Leg,
    TransferSpec,
    _post_batch,
    _post_one,
    require_positive_tokens,
    transfer_spec,
)
from banking.services.transactions import money_transaction
from core.errors import InvalidInput, NotFound


class HoldExceeded(InvalidInput):
    code = BankingErrorCode.HOLD_EXCEEDED


class HoldClosed(InvalidInput):
    code = BankingErrorCode.HOLD_CLOSED
    status = 409


@dataclass(frozen=True)
class HoldCapture:
    """Capture `sum(legs)` from a hold into the accounts of `legs` (all positive)."""

    hold_id: int
    idempotency_key: str
    legs: tuple[tuple[int, int], ...]
    reference: str = ""
    memo: str = ""


@money_transaction
def hold_place(
    *,
    organization_id: int,
    amount: int,
    reference: str,
    idempotency_key: str,
    expires_at: datetime | None = None,
) -> Hold:
    require_positive_tokens(amount)
    ids = organization_account_ids(organization_id)
    wallet_id, held_id = ids[AccountPurpose.WALLET], ids[AccountPurpose.HELD]
    accounts_lock([wallet_id, held_id])
    existing = Hold.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.organization_id != organization_id or existing.amount != amount:
            raise IdempotencyConflict(
                "This idempotency key was already used for a different hold.",
                fields={"idempotency_key": [idempotency_key]},
            )
        return existing
    transfer = _post_one(
        transfer_spec(
            kind=TransferKind.HOLD,
            idempotency_key=f"hold-place:{idempotency_key}",
            legs=[(wallet_id, -amount), (held_id, amount)],
            reference=reference,
        )
    )
    return Hold.objects.create(
        organization_id=organization_id,
        amount=amount,
        reference=reference,
        idempotency_key=idempotency_key,
        place_transfer=transfer,
        expires_at=expires_at
        or timezone.now() + timedelta(seconds=settings.LEDGER_HOLD_DEFAULT_TTL_S),
    )


def _capture_spec(hold: Hold, held_id: int, capture: HoldCapture) -> TransferSpec:
    total = 0
    for _, amount in capture.legs:
        require_positive_tokens(amount)
        total += amount
    return transfer_spec(
        kind=TransferKind.CAPTURE,
        idempotency_key=capture.idempotency_key,
        legs=[Leg(held_id, -total), *(Leg(a, n) for a, n in capture.legs)],
        reference=capture.reference or hold.reference,
        memo=capture.memo,
    )


def _check_open(hold: Hold, amount: int) -> None:
    if hold.status != Hold.Status.OPEN:
        raise HoldClosed(f"Hold {hold.pk} is closed: nothing is left to capture or release.")
    if amount > hold.remaining:
        raise HoldExceeded(
            f"Hold {hold.pk} has {hold.remaining} tokens left; {amount} requested.",
            fields={"remaining": hold.remaining, "requested": amount},
        )


@money_transaction
def hold_capture(
    *,
    hold_id: int,
    legs: Sequence[tuple[int, int]],
    idempotency_key: str,
    reference: str = "",
    memo: str = "",
) -> Transfer:
    result = holds_capture_batch(
        [HoldCapture(hold_id, idempotency_key, tuple(legs), reference, memo)]
    )
    return Transfer.objects.get(pk=result.transfer_ids[0])


@money_transaction
def holds_capture_batch(captures: Sequence[HoldCapture]) -> BatchResult:
    """Capture from many holds in one transaction through the ledger's batch form.
    A capture whose key was already posted is skipped."""
    if not captures:
        return BatchResult()
    holds = holds_lock(c.hold_id for c in captures)
    missing = {c.hold_id for c in captures} - set(holds)
    if missing:
        raise NotFound(f"Hold {min(missing)} does not exist.")
    held_ids = {
        h.id: organization_account_ids(h.organization_id)[AccountPurpose.HELD]
        for h in holds.values()
    }
    specs = [_capture_spec(holds[c.hold_id], held_ids[c.hold_id], c) for c in captures]
    done = set(
        Transfer.objects.filter(idempotency_key__in=[s.idempotency_key for s in specs])
        .values_list("idempotency_key", flat=True)
    )
    pending: dict[int, int] = {}
    for capture, spec in zip(captures, specs, strict=True):
        if spec.idempotency_key in done:
            continue
        amount = -spec.legs[0].amount
        pending[capture.hold_id] = pending.get(capture.hold_id, 0) + amount
        _check_open(holds[capture.hold_id], pending[capture.hold_id])
    result = _post_batch(specs)
    for hold_id, amount in pending.items():
        hold = holds[hold_id]
        closed = hold.remaining == amount
        Hold.objects.filter(pk=hold_id).update(
            captured=F("captured") + amount,
            status=Hold.Status.CLOSED if closed else Hold.Status.OPEN,
            updated_at=timezone.now(),
        )
    return result


@money_transaction
def hold_release(
    *, hold_id: int, idempotency_key: str, amount: int | None = None, memo: str = ""
) -> Transfer | None:
    """Release `amount` (default: all that remains) back to the wallet. Returns None when
    an open hold has nothing left to release."""
    holds = holds_lock([hold_id])
    hold = holds.get(hold_id)
    if hold is None:
        raise NotFound(f"Hold {hold_id} does not exist.")
    done = Transfer.objects.filter(idempotency_key=idempotency_key).first()
    if done is not None:
        return done
    release = hold.remaining if amount is None else require_positive_tokens(amount)
    if amount is None and hold.status == Hold.Status.CLOSED:
        return None
    _check_open(hold, release)
    ids = organization_account_ids(hold.organization_id)
    transfer = None
    if release > 0:
        transfer = _post_one(
            transfer_spec(
                kind=TransferKind.RELEASE,
                idempotency_key=idempotency_key,
                legs=[(ids[AccountPurpose.HELD], -release), (ids[AccountPurpose.WALLET], release)],
                reference=hold.reference,
                memo=memo,
            )
        )
    closed = hold.remaining == release
    Hold.objects.filter(pk=hold_id).update(
        released=F("released") + release,
        status=Hold.Status.CLOSED if closed else Hold.Status.OPEN,
        updated_at=timezone.now(),
    )
    return transfer


def holds_expire(*, now: datetime | None = None, limit: int = 500) -> int:
    """Release what remains of every open hold past its expiry. Safe to run twice."""
    now = now or timezone.now()
    expired = list(
        Hold.objects.filter(status=Hold.Status.OPEN, expires_at__lte=now)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    released = 0
    for hold_id in expired:
        if hold_release(hold_id=hold_id, idempotency_key=f"hold-expire:{hold_id}",
                        memo="Hold expired") is not None:
            released += 1
    return released
