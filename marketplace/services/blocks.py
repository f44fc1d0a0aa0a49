"""Compute blocks: reserved GPUs of a class out of the bank's inventory, paid from the
wallet or financed; sold back at a discount."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from banking.amortization import ScheduleRow
from banking.errors import IdempotencyConflict
from banking.locks import organizations_lock
from banking.models import Loan
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.selectors_lending import loan_quote
from banking.services.ledger import system_account, transfer_post
from banking.services.lending import (
    loan_originate,
    loan_principal_outstanding,
    loan_principal_repay,
)
from banking.services.transactions import money_transaction
from banking.standing import Act, organization_assert_may_act
from core.errors import InvalidInput, NotFound
from marketplace.errors import InsufficientInventory, SellBackNotAllowed
from marketplace.locks import idempotency_key_lock, inventory_slots_lock
from marketplace.models import Block, InventorySlot, SellBack
from marketplace.windows import HOUR, hour_slots, window_check, window_span_check
from scheduler.models import ACTIVE_JOB_STATES, GpuClass, Reservation
from scheduler.services.classes import gpu_class_by_name


@dataclass(frozen=True)
class BlockQuote:
    gpu_class: GpuClass
    gpu_count: int
    hours: int
    rate_per_gpu_hour: int
    discount_bps: int
    price: int
    down_payment: int
    financed: int
    schedule: list[ScheduleRow]


def discount_bps_for(hours: int) -> int:
    return next((bps for min_hours, bps in settings.BANK_BLOCK_DISCOUNTS if hours >= min_hours),
                0)


def _count(value: object, name: str = "gpu_count") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
        raise InvalidInput(f"{name} must be a whole number from 1.", fields={name: ["1 or more."]})
    return value


def block_window_bounds(start: datetime, end: datetime) -> None:
    """How far ahead and how long a block, or a question about availability, may be."""
    window_span_check(start, end, max_ahead_days=settings.BLOCK_MAX_AHEAD_DAYS,
                      max_days=settings.BLOCK_MAX_DAYS, what="A block")


def block_quote(*, organization_id: int, gpu_class: str, gpu_count: int, start: datetime,
                end: datetime, payment: str = Block.Payment.WALLET,
                term_months: int | None = None) -> BlockQuote:
    # The window first, before any read: its checks are arithmetic, whatever its length.
    hours = window_check(start, end)
    block_window_bounds(start, end)
    cls = gpu_class_by_name(gpu_class)
    gpu_count = _count(gpu_count)
    discount, price = block_price(rate_per_gpu_hour=cls.block_rate, gpu_count=gpu_count,
                                  hours=hours)
    down = financed = 0
    schedule: list[ScheduleRow] = []
    if payment == Block.Payment.FINANCED:
        if term_months is None:
            raise InvalidInput("A financed block needs term_months.",
                               fields={"term_months": ["Required when financed."]})
        down = price * settings.BANK_DOWN_PAYMENT_BPS // 10_000
        financed = price - down
        schedule = loan_quote(organization_id=organization_id, principal=financed,
                              term_months=term_months).schedule
    elif payment != Block.Payment.WALLET:
        raise InvalidInput("payment is wallet or financed.", fields={"payment": ["Unknown."]})
    return BlockQuote(cls, gpu_count, hours, cls.block_rate, discount, price, down, financed,
                      schedule)


@dataclass(frozen=True)
class Availability:
    gpu_class: GpuClass
    slots: list[tuple[datetime, int]]
    gpu_count: int
    rate_per_gpu_hour: int
    discount_bps: int
    price: int

    @property
    def min_free_gpus(self) -> int:
        return min((free for _, free in self.slots), default=0)


def block_price(*, rate_per_gpu_hour: int, gpu_count: int, hours: int) -> tuple[int, int]:
    """The one block pricing rule: rate x GPU-hours less the length discount, rounded
    down to whole tokens. Returns (discount_bps, price)."""
    base = rate_per_gpu_hour * gpu_count * hours
    discount = discount_bps_for(hours)
    return discount, base - base * discount // 10_000


def availability(*, gpu_class: str, start: datetime, end: datetime,
                 gpu_count: int = 1) -> Availability:
    """Bank GPUs of the class free in each hour of `[start, end)` (a read, no locks) and
    what `gpu_count` of them would cost for the window at today's block rate."""
    hours = window_check(start, end, allow_past=True)
    block_window_bounds(start, end)
    cls = gpu_class_by_name(gpu_class)
    gpu_count = _count(gpu_count)
    rows = dict(InventorySlot.objects.filter(gpu_class=cls, slot_start__gte=start,
                                             slot_start__lt=end)
                .values_list("slot_start").annotate(free=F("capacity") - F("booked")))
    discount, price = block_price(rate_per_gpu_hour=cls.block_rate, gpu_count=gpu_count,
                                  hours=hours)
    return Availability(cls, [(slot, rows.get(slot, 0)) for slot in hour_slots(start, end)],
                        gpu_count, cls.block_rate, discount, price)


@money_transaction
def block_buy(*, organization_id: int, gpu_class: str, gpu_count: int, start: datetime,
              end: datetime, payment: str, term_months: int | None = None,
              idempotency_key: str) -> Block:
    """Book `gpu_count` bank GPUs of the class for every hour of `[start, end)`, pay the
    bank (wallet, or a down payment and a loan for the rest) and create the scheduler
    reservation that jobs name as their `block`. The same key returns the same block.

    Locks, in the marketplace's order: the organization (as lending does), the inventory
    slots (ascending hour), then the accounts (inside the ledger and lending). The loan is
    originated before the down payment is posted. Refused with nothing booked or posted:
    `invalid_window`, `insufficient_inventory`, `no_credit_line`,
    `term_exceeds_credit_line`, `credit_limit_exceeded`, `insufficient_funds`,
    `organization_delinquent`, `organization_frozen`, `idempotency_conflict`."""
    idempotency_key_lock("block", idempotency_key)
    existing = Block.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        _same_purchase_check(existing, organization_id=organization_id, gpu_count=gpu_count,
                             start=start, end=end, payment=payment)
        return existing
    organizations_lock([organization_id])
    organization_assert_may_act(organization_id, Act.BUY)
    quote = block_quote(organization_id=organization_id, gpu_class=gpu_class,
                        gpu_count=gpu_count, start=start, end=end, payment=payment,
                        term_months=term_months)
    slots = inventory_slots_lock(quote.gpu_class.pk, hour_slots(start, end))
    short = [s for s in slots.values() if s.capacity - s.booked < quote.gpu_count]
    if short or len(slots) != quote.hours:
        free = min((s.capacity - s.booked for s in slots.values()), default=0)
        worst = min(short, key=lambda s: s.capacity - s.booked) if short else None
        at = f" at {worst.slot_start:%Y-%m-%d %H:00}" if worst else ""
        raise InsufficientInventory(
            f"The bank has {max(0, free)} {quote.gpu_class.name} GPUs free{at}; "
            f"{quote.gpu_count} asked.",
            fields={"gpu_count": [f"At most {max(0, free)}."]},
        )
    InventorySlot.objects.filter(pk__in=[s.pk for s in slots.values()]).update(
        booked=F("booked") + quote.gpu_count)
    capacity = system_account(AccountPurpose.BANK_CAPACITY).pk
    wallet = organization_account_ids(organization_id)[AccountPurpose.WALLET]
    loan = None
    if payment == Block.Payment.FINANCED:
        assert term_months is not None
        # The loan first, then the down payment, in this one transaction.
        loan = loan_originate(organization_id=organization_id, principal=quote.financed,
                              term_months=term_months, reference=f"block-key:{idempotency_key}",
                              pay_to_account_id=capacity,
                              idempotency_key=f"block-loan:{idempotency_key}")
    pay_now = quote.down_payment if loan else quote.price
    reservation = Reservation.objects.create(
        organization_id=organization_id, gpu_class=quote.gpu_class, gpu_count=quote.gpu_count,
        start=start, end=end, reference=f"block {payment}")
    if pay_now:
        transfer_post(kind=TransferKind.PURCHASE, idempotency_key=f"block-pay:{reservation.pk}",
                      legs=[(wallet, -pay_now), (capacity, pay_now)],
                      reference=f"block:{reservation.pk}",
                      memo=f"{quote.gpu_count} x {quote.gpu_class.name} for {quote.hours} h"
                           + (" (down payment)" if loan else ""))
    return Block.objects.create(
        reservation=reservation, organization_id=organization_id, gpu_class=quote.gpu_class,
        gpu_count=quote.gpu_count, start=start, end=end, rate_per_gpu_hour=quote.rate_per_gpu_hour,
        discount_bps=quote.discount_bps, price=quote.price, payment=payment,
        down_payment=quote.down_payment if loan else 0, loan=loan,
        idempotency_key=idempotency_key,
    )


def _same_purchase_check(block: Block, *, organization_id: int, gpu_count: int,
                         start: datetime, end: datetime, payment: str) -> None:
    if (block.organization_id, block.gpu_count, block.start, block.end, block.payment) != (
            organization_id, gpu_count, start, end, payment):
        raise IdempotencyConflict(
            "This idempotency key was already used for a different purchase.",
            fields={"idempotency_key": ["Already used."]})


def sell_back_credit(block: Block, *, gpu_count: int, sold_hours: int) -> int:
    """The one sell-back pricing rule: the block's price pro rata of the GPU-hours sold
    back, less the sell-back discount, rounded down."""
    total_gpu_hours = block.gpu_count * int((block.end - block.start) / HOUR)
    pro_rata = block.price * gpu_count * sold_hours // max(1, total_gpu_hours)
    return pro_rata - pro_rata * settings.BANK_SELL_BACK_DISCOUNT_BPS // 10_000


@dataclass(frozen=True)
class SellBackQuote:
    credit: int
    to_loan: int
    to_wallet: int


def sell_back_quote(*, block: Block, gpu_count: int, start: datetime) -> SellBackQuote:
    """What a sell-back would credit and how it splits: a financed block's loan principal
    not yet due is repaid first, the rest reaches the wallet (a read; the sell-back
    itself checks everything again under its locks)."""
    sold_hours = max(0, int((block.reservation.end - start) / HOUR))
    credit = sell_back_credit(block, gpu_count=gpu_count, sold_hours=sold_hours)
    to_loan = 0
    if block.loan is not None and block.loan.status in (Loan.Status.ACTIVE,
                                                        Loan.Status.OVERDUE):
        to_loan = min(credit, loan_principal_outstanding(block.loan))
    return SellBackQuote(credit, to_loan, credit - to_loan)


@money_transaction
def block_sell_back(*, organization_id: int, block_id: int, gpu_count: int, start: datetime,
                    idempotency_key: str) -> SellBack:
    """Return GPUs of a block from `start` to its end to the bank, credited pro rata at a
    discount. Only future, unused time: the whole block's GPUs from a later hour, or some
    of its GPUs for the whole window before it begins."""
    idempotency_key_lock("sell-back", idempotency_key)
    existing = SellBack.objects.select_related("block").filter(
        idempotency_key=idempotency_key).first()
    if existing is not None:
        if (existing.block.organization_id, existing.block_id, existing.gpu_count,
                existing.start) != (organization_id, block_id, gpu_count, start):
            raise IdempotencyConflict(
                "This idempotency key was already used for a different sell-back.",
                fields={"idempotency_key": ["Already used."]})
        return existing
    # The organization first (the marketplace's lock order): a financed block's credit
    # repays its loan, and lending locks the organization.
    organizations_lock([organization_id])
    block = Block.objects.select_related("reservation").filter(
        pk=block_id, organization_id=organization_id).first()
    if block is None:
        raise NotFound("Block not found.")
    reservation = Reservation.objects.select_for_update().get(pk=block.pk)
    gpu_count = _count(gpu_count)
    now = timezone.now()
    window_check(start, reservation.end, allow_past=True)
    if start < now:
        raise SellBackNotAllowed("Past time cannot be sold back; pick a future hour.",
                                 fields={"from": ["In the future."]})
    if not reservation.start <= start < reservation.end:
        raise SellBackNotAllowed("That time is outside the block.",
                                 fields={"from": ["Inside the block's window."]})
    if gpu_count > reservation.gpu_count:
        raise SellBackNotAllowed(f"The block has {reservation.gpu_count} GPUs.",
                                 fields={"gpu_count": [f"At most {reservation.gpu_count}."]})
    whole = gpu_count == reservation.gpu_count
    if not whole and start != reservation.start:
        raise SellBackNotAllowed(
            "Sell back all of the block's GPUs from an hour, or some of them for the whole "
            "window before it begins.")
    if reservation.jobs.filter(state__in=ACTIVE_JOB_STATES).exists() and start <= now + HOUR:
        raise SellBackNotAllowed("The block is in use; sell back later hours only.")
    if reservation.status != Reservation.Status.ACTIVE:
        raise SellBackNotAllowed("The block is no longer active.")
    sold_hours = int((reservation.end - start) / HOUR)
    credit = sell_back_credit(block, gpu_count=gpu_count, sold_hours=sold_hours)
    slots = inventory_slots_lock(block.gpu_class_id, hour_slots(start, reservation.end))
    InventorySlot.objects.filter(pk__in=[s.pk for s in slots.values()]).update(
        booked=F("booked") - gpu_count)
    end = reservation.end
    if whole:
        if start == reservation.start:
            reservation.status = Reservation.Status.CANCELED
        else:
            reservation.end = start
    else:
        reservation.gpu_count -= gpu_count
    reservation.save(update_fields=["end", "gpu_count", "status"])
    sell_back = SellBack.objects.create(block=block, gpu_count=gpu_count, start=start, end=end,
                                        credited=credit, idempotency_key=idempotency_key)
    capacity = system_account(AccountPurpose.BANK_CAPACITY).pk
    to_loan = 0
    if credit and block.loan_id is not None:
        # The loan's principal first: paying 20 % down and selling back must not leave
        # liquid tokens while the loan stays open.
        to_loan = loan_principal_repay(
            loan_id=block.loan_id, amount=credit, from_account_id=capacity,
            idempotency_key=f"sell-back:{sell_back.pk}", reference=f"block:{block.pk}").repaid
        SellBack.objects.filter(pk=sell_back.pk).update(to_loan=to_loan)
        sell_back.to_loan = to_loan
    if credit - to_loan:
        wallet = organization_account_ids(organization_id)[AccountPurpose.WALLET]
        transfer_post(kind=TransferKind.SELL_BACK, idempotency_key=f"sell-back:{sell_back.pk}",
                      legs=[(capacity, -(credit - to_loan)), (wallet, credit - to_loan)],
                      reference=f"block:{block.pk}",
                      memo=f"sold back {gpu_count} GPUs x {sold_hours} h"
                           + (f", {to_loan} repaid the loan" if to_loan else ""))
    Block.objects.filter(pk=block.pk).update(sold_back=F("sold_back") + credit)
    return sell_back
