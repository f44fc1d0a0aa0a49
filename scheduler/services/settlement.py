"""Usage becomes money: unsettled usage is priced at the assignment's rate and captured
from the job's hold through the ledger's batch form."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import DataError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from banking.locks import holds_lock
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account_ids
from banking.services.holds import HoldCapture, hold_release, holds_capture_batch
from banking.services.ledger import TransferSpec, system_account
from banking.services.payable import payable_earn_batch, payable_earn_spec
from banking.services.transactions import money_transaction
from core.errors import DomainError
from core.observability import BATCH_ITEMS_SET_ASIDE
from scheduler.fees import job_fee_bps
from scheduler.locks import assignments_lock
from scheduler.models import Assignment, Job, Node
from scheduler.pricing import charge_for, fee_of


@dataclass
class SettlementResult:
    assignments: int = 0
    captured: int = 0
    parked: int = 0  # poison items set aside (see ITEM_ERRORS)


# What one item's own rows can raise: a value out of range or a broken constraint in the
# database, a missing account, a hold closed or exceeded, a negative rate. Such an item is
# parked (logged, counted, marked on its row, left for an operator) and the others settle.
# Anything else (the database gone, a deadlock, a bug in this module) is everyone's: the
# batch fails as a whole and its task retries it.
ITEM_ERRORS: tuple[type[Exception], ...] = (DomainError, DataError, IntegrityError,
                                            LookupError, ValueError, ArithmeticError)

logger = logging.getLogger(__name__)


def _payee_account(node: Node, cache: dict[int, int]) -> int:
    """Open-market nodes earn for their provider; bank nodes' revenue goes to the bank."""
    if node.mode == Node.Mode.BANK:
        return system_account(AccountPurpose.BANK_CAPACITY).pk
    if node.provider_id not in cache:
        cache[node.provider_id] = organization_account_ids(node.provider_id)[AccountPurpose.WALLET]
    return cache[node.provider_id]


def usage_settle(*, assignment_ids: Iterable[int] | None = None,
                 limit: int = 1000) -> SettlementResult:
    """Capture what each assignment's reported usage costs beyond what was captured.

    Charges are cumulative per assignment: `charge_for(total gpu-seconds) - charged`, so
    the buyer pays exactly the rounded charge of the total however often usage comes in.
    Keyed by (assignment, sequence number): running it twice captures once.

    One batch, one transaction, as long as every item settles; when one cannot (a poison
    item, ITEM_ERRORS), each is settled on its own and the ones that still fail are parked,
    so a bad row never holds up everyone else's money (a lone item, as a completion settles
    it, is parked too: its run must still end). Parked items are skipped until
    usage_settlement_resume clears them."""
    qs = Assignment.objects.filter(gpu_seconds__gt=F("settled_gpu_seconds"),
                                   settlement_parked_at__isnull=True)
    if assignment_ids is not None:
        qs = qs.filter(id__in=list(assignment_ids))
    ids = list(qs.order_by("id").values_list("id", flat=True)[:limit])
    if not ids:
        return SettlementResult()
    try:
        return _settle(ids)
    except ITEM_ERRORS as error:
        if len(ids) == 1:
            _park(ids[0], error)
            return SettlementResult(parked=1)
    result = SettlementResult()
    failed: list[tuple[int, Exception]] = []
    for assignment_id in ids:
        try:
            one = _settle([assignment_id])
        except ITEM_ERRORS as error:
            failed.append((assignment_id, error))
            continue
        result.assignments += one.assignments
        result.captured += one.captured
    if len(failed) == len(ids):
        # Not one item settles: that is no poison item but everyone's problem (a broken
        # release, a missing system account). Parking them all would hide it; the batch
        # fails as before, is retried and alerts.
        raise failed[0][1]
    for assignment_id, problem in failed:
        _park(assignment_id, problem)
    result.parked = len(failed)
    return result


@transaction.atomic
def _park(assignment_id: int, error: Exception) -> None:
    reason = f"{type(error).__name__}: {error}"
    logger.error("settlement parked assignment %s: %s", assignment_id, reason,
                 exc_info=error)
    BATCH_ITEMS_SET_ASIDE.labels("settlement", type(error).__name__).inc()
    Assignment.objects.filter(pk=assignment_id).update(
        settlement_parked_at=timezone.now(), settlement_parked_reason=reason[:500])


@transaction.atomic
def usage_settlement_resume(*, assignment_ids: Iterable[int]) -> int:
    """An operator mended what made these items poison: settle them again."""
    return Assignment.objects.filter(id__in=list(assignment_ids),
                                     settlement_parked_at__isnull=False).update(
        settlement_parked_at=None, settlement_parked_reason="")


@money_transaction
def _settle(ids: list[int]) -> SettlementResult:
    result = SettlementResult()
    locked = assignments_lock(ids)
    nodes = {n.id: n for n in Node.objects.filter(id__in={a.node_id for a in locked.values()})}
    hold_ids = {a.job.hold_id for a in locked.values() if a.job.hold_id}
    holds = holds_lock(hold_ids)
    left = {h.id: h.remaining if h.status == h.Status.OPEN else 0 for h in holds.values()}
    revenue = system_account(AccountPurpose.PLATFORM_REVENUE).pk
    payees: dict[int, int] = {}
    captures: list[HoldCapture] = []
    earned: list[TransferSpec] = []
    updates: list[tuple[int, int, int, int, int]] = []
    for a in locked.values():
        if a.gpu_seconds <= a.settled_gpu_seconds or a.settlement_parked_at is not None:
            continue
        delta = fee_delta = 0
        hold_id = a.job.hold_id
        if hold_id is not None:
            delta = min(charge_for(a.gpu_seconds, a.rate_per_gpu_hour) - a.charged,
                        left.get(hold_id, 0))
            delta = max(0, delta)
            fee_bps = job_fee_bps(a.job)
            fee_delta = fee_of(a.charged + delta, fee_bps) - a.fee
            provider_part = delta - fee_delta
            legs = []
            if provider_part > 0:
                node = nodes[a.node_id]
                legs.append((_payee_account(node, payees), provider_part))
                if node.mode != Node.Mode.BANK:
                    earned.append(payable_earn_spec(
                        organization_id=node.provider_id, amount=provider_part,
                        idempotency_key=f"settle:a{a.id}:s{a.last_seq}",
                        reference=f"job:{a.job_id}", memo=f"earned on node {a.node_id}"))
            if fee_delta > 0:
                legs.append((revenue, fee_delta))
            if legs:
                left[hold_id] -= delta
                captures.append(HoldCapture(
                    hold_id=hold_id,
                    idempotency_key=f"settle:a{a.id}:s{a.last_seq}",
                    legs=tuple(legs),
                    reference=f"job:{a.job_id}",
                    memo=f"{a.gpu_seconds} GPU-seconds on node {a.node_id}, platform fee "
                         f"{fee_bps / 100:g}%",
                ))
        updates.append((a.id, a.gpu_seconds, a.last_seq, delta, fee_delta))
        result.captured += delta
    holds_capture_batch(captures)
    payable_earn_batch(earned)  # after the captures: wallets before payable accounts
    for assignment_id, gpu_seconds, seq, delta, fee_delta in updates:
        Assignment.objects.filter(pk=assignment_id).update(
            settled_gpu_seconds=gpu_seconds, settled_seq=seq,
            charged=F("charged") + delta, fee=F("fee") + fee_delta,
        )
    result.assignments = len(updates)
    return result


def job_hold_release(job: Job) -> None:
    """At the end of a job, what its hold has left goes back to the wallet."""
    if job.hold_id is not None:
        hold_release(hold_id=job.hold_id, idempotency_key=f"job-release:{job.pk}",
                     memo=f"job {job.pk} ended")
