"""SLA credits: reserved GPUs the bank could not deliver are credited to the buyer, once
per interval, at most the multiple in force (admin, `SlaMultiple`, with history) of what
the buyer paid for the undelivered GPU-hours (the block's price per GPU-hour, after its
discount). No pair can profit from a failure: the deposits of the class that were offline
in the interval forfeit its yield (the accrual pays nothing for it) and owe a penalty
equal to the credit, split by their GPUs with the cumulative-flooring rule of the yield:
taken from their provider's future yield first, else owed at once.

A bank GPU counts as delivered when its node was verifiably online (heartbeats), its
provider may act and its agent reports it: placement preempts on-demand work for a
block's jobs and keeps the block's GPUs off on-demand jobs during the window
(scheduler.services.block_rules), so such a GPU is one the block's jobs could get."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.services.ledger import system_account, transfer_post
from banking.services.transactions import money_transaction
from marketplace.models import Block, CapacityDeposit, SlaCredit, SlaMultiple, SlaPenalty
from marketplace.services.deposits import heartbeat_coverage
from marketplace.services.sla_penalties import sla_penalties_owe
from scheduler.models import Node, Reservation
from scheduler.standing import node_may_work


def delivered_gpus(gpu_class_id: int, t0: datetime, t1: datetime) -> int:
    """Bank GPUs of the class its blocks' jobs could get through the interval: on nodes
    verifiably online, of providers that may act, up to what their agents report."""
    nodes = Node.objects.filter(node_may_work(), gpu_class_id=gpu_class_id,
                                mode=Node.Mode.BANK, is_approved=True)
    return sum(min(n.gpu_count, n.gpus_reported or 0) for n in nodes
               if heartbeat_coverage(n.pk, t0, t1) >= settings.BANK_COVERAGE_THRESHOLD)


def sla_multiple_bps(at: datetime) -> int:
    """The multiple in force at `at` (the latest set before it), else the setting."""
    row = SlaMultiple.objects.filter(created_at__lte=at).order_by("-created_at", "-id").first()
    if row is not None:
        return row.multiple_bps
    return int(settings.BANK_SLA_MULTIPLE * 10_000)


def sla_credit_amount(block: Block, *, undelivered: int, seconds: int,
                      multiple_bps: int) -> int:
    """The multiple of what the buyer paid for `undelivered` GPUs over `seconds`: the
    block's price per GPU-second, rounded down once."""
    gpu_seconds_bought = block.gpu_count * int((block.end - block.start).total_seconds())
    return (undelivered * seconds * block.price * multiple_bps
            // (gpu_seconds_bought * 10_000))


def shortfall_share(sizes: list[tuple[int, int]], delivered: int, reservation_id: int) -> int:
    """The undelivered GPUs of one reservation when `sizes` (id, GPUs; ascending id) were
    booked in an interval and only `delivered` GPUs were online: the shortfall is split in
    proportion to size with cumulative flooring, so the shares are whole GPUs that sum to
    the shortfall exactly (the rounding rule of the yield, applied to GPUs)."""
    booked = sum(n for _, n in sizes)
    shortfall = max(0, booked - delivered)
    if not shortfall:
        return 0
    before = 0
    for rid, n in sizes:
        if rid == reservation_id:
            return shortfall * (before + n) // booked - shortfall * before // booked
        before += n
    return 0


def sla_credits_post(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    posted = 0
    step = timedelta(seconds=settings.BANK_SLA_INTERVAL_S)
    # Blocks whose window has started and is not checked to its end yet (a finished block
    # drops out once its last interval is checked).
    blocks = Block.objects.filter(
        reservation__status=Reservation.Status.ACTIVE, start__lt=now
    ).filter(Q(sla_checked_until__isnull=True) | Q(sla_checked_until__lt=F("reservation__end")))
    for block_id in blocks.values_list("pk", flat=True):
        posted += _block_sla(block_id, now, step)
    return posted


@money_transaction
def _block_sla(block_id: int, now: datetime, step: timedelta) -> int:
    block = Block.objects.select_for_update().select_related("reservation").get(pk=block_id)
    r = block.reservation
    t0 = block.sla_checked_until or r.start
    posted = 0
    while t0 + step <= min(now, r.end):
        t1 = t0 + step
        sizes = list(Reservation.objects.filter(
            gpu_class_id=r.gpu_class_id, status=Reservation.Status.ACTIVE,
            start__lt=t1, end__gt=t0).order_by("id").values_list("id", "gpu_count"))
        delivered = delivered_gpus(r.gpu_class_id, t0, t1)
        undelivered = shortfall_share(sizes, delivered, r.pk)
        if undelivered:
            amount = sla_credit_amount(block, undelivered=undelivered,
                                       seconds=int(step.total_seconds()),
                                       multiple_bps=sla_multiple_bps(t0))
            try:
                with transaction.atomic():
                    credit = SlaCredit.objects.create(block=block, interval_start=t0,
                                                      undelivered_gpus=undelivered, amount=amount)
            except IntegrityError:
                credit = None
            if credit is not None and amount:
                wallet = organization_account_ids(block.organization_id)[AccountPurpose.WALLET]
                transfer_post(
                    kind=TransferKind.SLA_CREDIT, idempotency_key=f"sla:{credit.pk}",
                    legs=[(system_account(AccountPurpose.BANK_CAPACITY).pk, -amount),
                          (wallet, amount)],
                    reference=f"block:{block.pk}",
                    memo=f"SLA credit: {undelivered} GPUs undelivered {t0:%Y-%m-%d %H:%M}",
                )
                sla_penalties_assess(credit, r.gpu_class_id, t0, t1)
                posted += 1
        t0 = t1
    block.sla_checked_until = t0
    block.save(update_fields=["sla_checked_until"])
    return posted


def sla_penalties_assess(credit: SlaCredit, gpu_class_id: int, t0: datetime,
                         t1: datetime) -> list[SlaPenalty]:
    """The deposits of the class that were offline through `[t0, t1)` owe `credit`'s
    amount between them, in proportion to their GPUs (whole tokens summing to it)."""
    offline = [d for d in CapacityDeposit.objects.filter(
        gpu_class_id=gpu_class_id, start__lte=t0, end__gte=t1).order_by("id")
        if heartbeat_coverage(d.node_id, t0, t1) < settings.BANK_COVERAGE_THRESHOLD]
    gpus = sum(d.gpu_count for d in offline)
    made = []
    before = 0
    for d in offline:
        share = (credit.amount * (before + d.gpu_count) // gpus
                 - credit.amount * before // gpus)
        before += d.gpu_count
        if not share:
            continue
        penalty, created = SlaPenalty.objects.get_or_create(
            deposit=d, credit=credit,
            defaults={"provider_id": d.provider_id, "amount": share, "outstanding": share})
        if created:
            made.append(penalty)
            if d.status != CapacityDeposit.Status.ACTIVE:
                sla_penalties_owe(provider_id=d.provider_id)  # no yield left to take it from
    return made
