"""SLA credits: reserved GPUs the bank could not deliver are credited to the buyer at a
multiple of the block rate, once per interval."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.services.ledger import system_account, transfer_post
from banking.services.transactions import money_transaction
from marketplace.models import Block, SlaCredit
from marketplace.services.deposits import heartbeat_coverage
from scheduler.models import Node, Reservation


def delivered_gpus(gpu_class_id: int, t0: datetime, t1: datetime) -> int:
    """Bank GPUs of the class that were verifiably online through the interval."""
    nodes = Node.objects.filter(gpu_class_id=gpu_class_id, mode=Node.Mode.BANK, is_approved=True)
    return sum(n.gpu_count for n in nodes
               if heartbeat_coverage(n.pk, t0, t1) >= settings.BANK_COVERAGE_THRESHOLD)


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
            amount = (undelivered * block.rate_per_gpu_hour * int(step.total_seconds())
                      * settings.BANK_SLA_MULTIPLE // 3600)
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
                posted += 1
        t0 = t1
    block.sla_checked_until = t0
    block.save(update_fields=["sla_checked_until"])
    return posted
