"""Capacity deposits and their availability yield."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone

from banking.errors import IdempotencyConflict
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.services.ledger import system_account, transfer_post
from banking.services.payable import payable_earn
from banking.services.transactions import money_transaction
from banking.standing import Act, organization_assert_may_act
from core.errors import InvalidInput, NotFound
from marketplace.errors import (
    DepositOverlap,
    DepositTooFarAhead,
    DepositTooLong,
    GpusNotReported,
    NodeNotInBankMode,
)
from marketplace.locks import idempotency_key_lock, inventory_slots_lock
from marketplace.models import Advance, CapacityDeposit, InventorySlot, YieldAccrual
from marketplace.services.repayment import repay_oldest_first
from marketplace.services.sla_penalties import sla_penalties_owe, sla_penalties_repay
from marketplace.windows import HOUR, hour_slots, window_check, window_span_check
from scheduler.locks import nodes_lock
from scheduler.models import Node, NodeFault, NodeHeartbeat
from scheduler.services.reliability import node_fault_record


def interval_yield(total: int, intervals: int, i: int) -> int:
    """The yield of interval i: the intervals' yields are whole tokens that sum exactly to
    `total`, so k online intervals of n earn total*k/n rounded down at most by one token."""
    return total * (i + 1) // intervals - total * i // intervals


@money_transaction
def deposit_create(*, provider_id: int, node_id: int, gpu_count: int, start: datetime,
                   end: datetime, idempotency_key: str | None = None) -> CapacityDeposit:
    if idempotency_key:
        idempotency_key_lock("deposit", idempotency_key)
        existing = CapacityDeposit.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if (existing.provider_id, existing.node_id, existing.gpu_count, existing.start,
                    existing.end) != (provider_id, node_id, gpu_count, start, end):
                raise IdempotencyConflict(
                    "This idempotency key was already used for a different deposit.",
                    fields={"idempotency_key": ["Already used."]})
            return existing
    # The window before anything is locked or done per hour of it: its checks are arithmetic.
    hours = window_check(start, end)
    _deposit_window_bounds(start, end)
    organization_assert_may_act(provider_id, Act.DEPOSIT)
    if Node.objects.filter(pk=node_id, provider_id=provider_id).first() is None:
        raise NotFound("Node not found.", fields={"node": ["Not one of your nodes."]})
    node = nodes_lock([node_id])[node_id]
    if not node.is_approved:
        raise NodeNotInBankMode("The node is not approved yet.")
    if node.mode != Node.Mode.BANK:
        raise NodeNotInBankMode("Only nodes in bank mode can deposit capacity; switch its mode.")
    if isinstance(gpu_count, bool) or not isinstance(gpu_count, int) or not (
        1 <= gpu_count <= node.gpu_count
    ):
        raise InvalidInput(f"gpu_count must be from 1 to {node.gpu_count}.",
                           fields={"gpu_count": [f"1 to {node.gpu_count}."]})
    reported = node.gpus_reported or 0
    if gpu_count > reported:
        raise GpusNotReported(
            f"The node's agent reports {reported} GPUs (nvidia-smi); a deposit cannot name "
            "more than it reports.", fields={"gpu_count": [f"At most {reported}."]})
    interval_s = settings.BANK_YIELD_INTERVAL_S
    window_s = int((end - start).total_seconds())
    if window_s % interval_s:
        raise InvalidInput("The window must be a whole number of yield intervals.")
    overlapping = list(CapacityDeposit.objects.filter(
        node=node, status=CapacityDeposit.Status.ACTIVE, start__lt=end, end__gt=start))
    at, used = _busiest_moment(overlapping, start, end)
    if used + gpu_count > node.gpu_count:
        raise DepositOverlap(
            f"At {at:%Y-%m-%d %H:00} this node already has {used} of its "
            f"{node.gpu_count} GPUs deposited.",
            fields={"gpu_count": [f"At most {node.gpu_count - used} here."]},
        )
    rate = node.gpu_class.deposit_rate
    deposit = CapacityDeposit.objects.create(
        provider_id=provider_id, node=node, gpu_class_id=node.gpu_class_id, gpu_count=gpu_count,
        start=start, end=end, rate_per_gpu_hour=rate, interval_s=interval_s,
        intervals=window_s // interval_s, total_yield=gpu_count * rate * hours,
        idempotency_key=idempotency_key,
    )
    slots = inventory_slots_lock(node.gpu_class_id, hour_slots(start, end))
    InventorySlot.objects.filter(pk__in=[s.pk for s in slots.values()]).update(
        capacity=F("capacity") + gpu_count)
    return deposit


def _deposit_window_bounds(start: datetime, end: datetime) -> None:
    window_span_check(start, end, max_ahead_days=settings.DEPOSIT_MAX_AHEAD_DAYS,
                      max_days=settings.DEPOSIT_MAX_DAYS, what="A deposit",
                      too_far=DepositTooFarAhead, too_long=DepositTooLong)


def _busiest_moment(deposits: list[CapacityDeposit], start: datetime,
                    end: datetime) -> tuple[datetime, int]:
    """When within [start, end) the most of these deposits' GPUs are deposited at once,
    and how many: a sweep over their starts and ends, not a count per hour."""
    changes: dict[datetime, int] = {}
    for d in deposits:
        changes[max(d.start, start)] = changes.get(max(d.start, start), 0) + d.gpu_count
        if d.end < end:
            changes[d.end] = changes.get(d.end, 0) - d.gpu_count
    at, most, running = start, 0, 0
    for moment in sorted(changes):
        running += changes[moment]
        if running > most:
            at, most = moment, running
    return at, most


def heartbeat_coverage(node_id: int, start: datetime, end: datetime) -> float:
    minutes = int((end - start).total_seconds() // 60) or 1
    seen = (NodeHeartbeat.objects.filter(node_id=node_id, at__gte=start, at__lt=end)
            .annotate(minute=TruncMinute("at")).values("minute").distinct().count())
    return min(1.0, seen / minutes)


@dataclass
class AccrualRun:
    intervals: int = 0
    paid: int = 0
    missed: int = 0
    defaulted: int = 0


def yield_accrue(*, now: datetime | None = None) -> AccrualRun:
    """Accrue every finished interval of every active deposit. Safe to run twice: each
    interval is accrued once (unique per deposit and interval)."""
    now = now or timezone.now()
    run = AccrualRun()
    for deposit_id in CapacityDeposit.objects.filter(
        status=CapacityDeposit.Status.ACTIVE, start__lt=now
    ).values_list("id", flat=True):
        _accrue_deposit(deposit_id, now, run)
    for deposit_id in CapacityDeposit.objects.filter(
        status=CapacityDeposit.Status.DEFAULTED, inventory_withdrawn=False
    ).values_list("id", flat=True):
        deposit_inventory_withdraw(deposit_id=deposit_id, now=now)
    return run


@money_transaction
def deposit_inventory_withdraw(*, deposit_id: int, now: datetime) -> int:
    """A defaulted deposit's GPUs are not for sale any more: from the next hour to the end
    of its window, each slot's capacity drops by its GPUs, or by what is still unsold if
    blocks were booked on them (those blocks are covered by SLA credits if undelivered).
    Its own transaction, after the accrual's: slots are locked before accounts, never after.
    Returns the GPU-hours withdrawn; runs once per deposit."""
    deposit = CapacityDeposit.objects.select_for_update().get(pk=deposit_id)
    if deposit.status != CapacityDeposit.Status.DEFAULTED or deposit.inventory_withdrawn:
        return 0
    from_hour = max(deposit.start, now.replace(minute=0, second=0, microsecond=0) + HOUR)
    withdrawn = 0
    if from_hour < deposit.end:
        slots = inventory_slots_lock(deposit.gpu_class_id, hour_slots(from_hour, deposit.end))
        for slot in slots.values():
            take = min(deposit.gpu_count, slot.capacity - slot.booked)
            if take > 0:
                InventorySlot.objects.filter(pk=slot.pk).update(capacity=F("capacity") - take)
                withdrawn += take
    CapacityDeposit.objects.filter(pk=deposit.pk).update(inventory_withdrawn=True)
    return withdrawn


@money_transaction
def _accrue_deposit(deposit_id: int, now: datetime, run: AccrualRun) -> None:
    deposit = CapacityDeposit.objects.select_for_update().get(pk=deposit_id)
    if deposit.status != CapacityDeposit.Status.ACTIVE:
        return
    step = timedelta(seconds=deposit.interval_s)
    wallet = organization_account_ids(deposit.provider_id)[AccountPurpose.WALLET]
    capacity = system_account(AccountPurpose.BANK_CAPACITY).pk
    while deposit.next_interval < deposit.intervals:
        i = deposit.next_interval
        t0 = deposit.start + i * step
        if t0 + step > now:
            break
        coverage = heartbeat_coverage(deposit.node_id, t0, t0 + step)
        online = coverage >= settings.BANK_COVERAGE_THRESHOLD
        amount = interval_yield(deposit.total_yield, deposit.intervals, i)
        try:
            with transaction.atomic():
                accrual = YieldAccrual.objects.create(deposit=deposit, interval_start=t0,
                                                      online=online, coverage=coverage,
                                                      amount=amount)
        except IntegrityError:
            deposit.next_interval = i + 1
            continue
        if online and amount:
            # Advances were paid out of bank_capacity ahead of time: the part of the yield
            # that repays them stays there, only the rest reaches the wallet.
            repaid = _advances_repay(deposit.provider_id, amount)
            repaid += sla_penalties_repay(deposit.provider_id, amount - repaid)
            if amount - repaid:
                transfer_post(kind=TransferKind.YIELD, idempotency_key=f"yield:{accrual.pk}",
                              legs=[(capacity, -(amount - repaid)), (wallet, amount - repaid)],
                              reference=f"deposit:{deposit.pk}",
                              memo=f"availability yield {t0:%Y-%m-%d %H:%M}"
                                   + (f", {repaid} repaid advances or penalties" if repaid else ""))
                payable_earn(organization_id=deposit.provider_id, amount=amount - repaid,
                             idempotency_key=f"yield:{accrual.pk}",
                             reference=f"deposit:{deposit.pk}", memo="availability yield")
            YieldAccrual.objects.filter(pk=accrual.pk).update(repaid_advance=repaid)
            deposit.earned += amount
            run.paid += 1
        elif not online:
            deposit.missed_yield += amount
            deposit.missed_intervals += 1
            node_fault_record(node_id=deposit.node_id, kind=NodeFault.Kind.MISSED_INTERVAL,
                              now=t0 + step)
            run.missed += 1
        run.intervals += 1
        deposit.next_interval = i + 1
        if deposit.missed_intervals > settings.BANK_DEFAULT_MISSED_SHARE * deposit.intervals:
            deposit.status = CapacityDeposit.Status.DEFAULTED
            advances_default(provider_id=deposit.provider_id)
            sla_penalties_owe(provider_id=deposit.provider_id)
            run.defaulted += 1
            break
    finished = deposit.next_interval >= deposit.intervals
    if deposit.status == CapacityDeposit.Status.ACTIVE and finished:
        deposit.status = CapacityDeposit.Status.COMPLETED
    deposit.save(update_fields=["next_interval", "earned", "missed_yield", "missed_intervals",
                                "status"])
    if finished and not CapacityDeposit.objects.filter(
            provider_id=deposit.provider_id, status=CapacityDeposit.Status.ACTIVE).exists():
        # No yield left to repay from: what is still outstanding is owed now.
        advances_default(provider_id=deposit.provider_id)
        sla_penalties_owe(provider_id=deposit.provider_id)


def _advances_repay(provider_id: int, amount: int) -> int:
    """Accruals repay open advances first, oldest first; returns what was withheld."""
    return repay_oldest_first(
        Advance.objects.select_for_update().filter(
            provider_id=provider_id, status=Advance.Status.OPEN).order_by("id"),
        amount, repaid=Advance.Status.REPAID)


def advances_default(*, provider_id: int) -> int:
    """A defaulted deposit makes the provider's unpaid advances owed at once: the bank
    takes them back into bank_capacity from the provider's debt account (no floor;
    negative = owed), which blocks spending until a top-up repays it."""
    owed = 0
    debt = organization_account_ids(provider_id)[AccountPurpose.DEBT]
    capacity = system_account(AccountPurpose.BANK_CAPACITY).pk
    for advance in Advance.objects.select_for_update().filter(
        provider_id=provider_id, status=Advance.Status.OPEN
    ).order_by("id"):
        transfer_post(kind=TransferKind.ADVANCE, idempotency_key=f"advance-default:{advance.pk}",
                      legs=[(debt, -advance.outstanding), (capacity, advance.outstanding)],
                      reference=f"advance:{advance.pk}",
                      memo="advance owed at once: a deposit defaulted")
        owed += advance.outstanding
        advance.outstanding = 0
        advance.status = Advance.Status.DEFAULTED
        advance.save(update_fields=["outstanding", "status", "updated_at"])
    return owed


def remaining_expected_yield(provider_id: int, *, now: datetime | None = None,
                             horizon: timedelta | None = None,
                             verified_only: bool = False) -> int:
    """What the provider's active deposits would still earn fully online: the yield of
    every interval that has not started yet (intervals already under way or not accrued yet
    are not lent against), or of those starting before `now + horizon`. By the rounding
    rule, intervals k..m-1 earn floor(total*m/n) - floor(total*k/n). `verified_only`
    counts only deposits on nodes with a verified heartbeat history."""
    now = now or timezone.now()
    total = 0
    verified: dict[int, bool] = {}
    for d in CapacityDeposit.objects.filter(provider_id=provider_id,
                                            status=CapacityDeposit.Status.ACTIVE):
        if verified_only:
            if d.node_id not in verified:
                verified[d.node_id] = node_history_verified(d.node_id, now=now)
            if not verified[d.node_id]:
                continue
        elapsed_s = max(0, (now - d.start).total_seconds())
        first = max(d.next_interval, min(d.intervals, -(-int(elapsed_s) // d.interval_s)))
        last = d.intervals
        if horizon is not None:
            until_s = max(0, int((now + horizon - d.start).total_seconds()))
            last = min(d.intervals, -(-until_s // d.interval_s))
        if last > first:
            total += d.total_yield * last // d.intervals - d.total_yield * first // d.intervals
    return total


def node_history_verified(node_id: int, *, now: datetime | None = None) -> bool:
    """The node had heartbeats on each of the last BANK_ADVANCE_HISTORY_DAYS days (24-hour
    spans back from this hour): a node registered yesterday backs no advance."""
    days = settings.BANK_ADVANCE_HISTORY_DAYS
    if days <= 0:
        return True
    now = now or timezone.now()
    # Whole hours, so that each hour with a beat falls in exactly one day.
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    seen = {int((at - since) / timedelta(days=1)) for at in NodeHeartbeat.objects.filter(
        node_id=node_id, at__gte=since, at__lt=now).annotate(
        hour=TruncHour("at")).values_list("hour", flat=True).distinct()}
    return all(day in seen for day in range(days))

