"""SLA credits: reserved GPUs the bank could not deliver are credited to the buyer at a
multiple of the block rate, once per interval."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
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


def sla_credits_post(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    posted = 0
    step = timedelta(seconds=settings.BANK_SLA_INTERVAL_S)
    blocks = Block.objects.filter(reservation__status=Reservation.Status.ACTIVE,
                                  start__lt=now).select_related("reservation")
    for block in blocks:
        posted += _block_sla(block.pk, now, step)
    return posted


@money_transaction
def _block_sla(block_id: int, now: datetime, step: timedelta) -> int:
    block = Block.objects.select_for_update().select_related("reservation").get(pk=block_id)
    r = block.reservation
    t0 = block.sla_checked_until or r.start
    posted = 0
    while t0 + step <= min(now, r.end):
        t1 = t0 + step
        booked = sum(other.gpu_count for other in Reservation.objects.filter(
            gpu_class_id=r.gpu_class_id, status=Reservation.Status.ACTIVE,
            start__lt=t1, end__gt=t0))
        delivered = delivered_gpus(r.gpu_class_id, t0, t1)
        shortfall = max(0, booked - delivered)
        # A shortfall is shared among the blocks of the interval in proportion to size.
        undelivered = shortfall * r.gpu_count // booked if booked else 0
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
