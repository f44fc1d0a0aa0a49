"""The computing bank's products: capacity deposits and their availability yield,
advances, the bank's inventory, compute blocks and sell-backs, price history, SLA
credits, low-balance alerts."""

from django.db import models

from banking.models import Loan, Organization
from scheduler.models import GpuClass, Node, Reservation


class CapacityDeposit(models.Model):
    """A node's GPUs deposited in the bank for `[start, end)` at the class's deposit rate
    (locked). `total_yield` is what the whole window earns if the node is always online."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        DEFAULTED = "defaulted", "Defaulted"

    provider = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="deposits")
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="deposits")
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="+")
    gpu_count = models.PositiveIntegerField()
    start = models.DateTimeField()
    end = models.DateTimeField()
    rate_per_gpu_hour = models.BigIntegerField()
    interval_s = models.PositiveIntegerField()
    intervals = models.PositiveIntegerField()
    total_yield = models.BigIntegerField()
    next_interval = models.PositiveIntegerField(default=0, help_text="first interval not accrued")
    earned = models.BigIntegerField(default=0)
    missed_yield = models.BigIntegerField(default=0)
    missed_intervals = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    inventory_withdrawn = models.BooleanField(
        default=False, help_text="defaulted: its unsold future GPUs left the inventory")
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gt=models.F("start")),
                                   name="deposit_window_ordered"),
            models.CheckConstraint(condition=models.Q(gpu_count__gte=1), name="deposit_has_gpus"),
        ]

    def __str__(self) -> str:
        return f"deposit {self.pk}: {self.gpu_count} GPU of node {self.node_id}"


class YieldAccrual(models.Model):
    deposit = models.ForeignKey(CapacityDeposit, on_delete=models.PROTECT,
                                related_name="accruals")
    interval_start = models.DateTimeField()
    online = models.BooleanField()
    coverage = models.FloatField(help_text="share of the interval's minutes with a heartbeat")
    amount = models.BigIntegerField(help_text="yield of the interval (paid only if online)")
    repaid_advance = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deposit_id", "interval_start"]
        constraints = [
            models.UniqueConstraint(fields=["deposit", "interval_start"],
                                    name="accrual_once_per_interval"),
        ]

    def __str__(self) -> str:
        return f"accrual {self.deposit_id}@{self.interval_start:%Y-%m-%d %H:%M}"


class Advance(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        REPAID = "repaid", "Repaid"
        DEFAULTED = "defaulted", "Defaulted"

    provider = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="advances")
    amount = models.BigIntegerField()
    outstanding = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(outstanding__gte=0)
                & models.Q(outstanding__lte=models.F("amount")),
                name="advance_outstanding_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"advance {self.pk} ({self.outstanding}/{self.amount})"


class InventorySlot(models.Model):
    """Bank GPUs of a class in one hour: deposited (capacity) and sold as blocks (booked).
    The CHECK makes overbooking impossible in the database."""

    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="+")
    slot_start = models.DateTimeField()
    capacity = models.IntegerField(default=0)
    booked = models.IntegerField(default=0)

    class Meta:
        ordering = ["gpu_class_id", "slot_start"]
        constraints = [
            models.UniqueConstraint(fields=["gpu_class", "slot_start"], name="slot_once"),
            models.CheckConstraint(
                condition=models.Q(booked__gte=0) & models.Q(booked__lte=models.F("capacity")),
                name="slot_never_overbooked",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.gpu_class_id}@{self.slot_start:%Y-%m-%d %H:00} {self.booked}/{self.capacity}"


class Block(models.Model):
    """A compute block: its id is its scheduler reservation's, which jobs name."""

    class Payment(models.TextChoices):
        WALLET = "wallet", "Paid from the wallet"
        FINANCED = "financed", "Financed"

    reservation = models.OneToOneField(Reservation, primary_key=True, on_delete=models.PROTECT,
                                       related_name="block")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="blocks")
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="+")
    gpu_count = models.PositiveIntegerField()
    start = models.DateTimeField()
    end = models.DateTimeField()
    rate_per_gpu_hour = models.BigIntegerField(help_text="block rate locked at purchase")
    discount_bps = models.PositiveIntegerField(default=0)
    price = models.BigIntegerField()
    payment = models.CharField(max_length=16, choices=Payment.choices)
    down_payment = models.BigIntegerField(default=0)
    loan = models.OneToOneField(Loan, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="block")
    sold_back = models.BigIntegerField(default=0, help_text="tokens credited for sell-backs")
    sla_checked_until = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-start"]

    def __str__(self) -> str:
        return f"block {self.pk}: {self.gpu_count} x {self.gpu_class_id}"


class SellBack(models.Model):
    block = models.ForeignKey(Block, on_delete=models.PROTECT, related_name="sell_backs")
    gpu_count = models.PositiveIntegerField()
    start = models.DateTimeField(help_text="sold back from")
    end = models.DateTimeField()
    credited = models.BigIntegerField()
    to_loan = models.BigIntegerField(
        default=0, help_text="part of the credit that repaid the block's loan principal")
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"sell-back {self.pk} of block {self.block_id}"

    @property
    def to_wallet(self) -> int:
        return self.credited - self.to_loan


class PriceHistory(models.Model):
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.CASCADE,
                                  related_name="price_history")
    on_demand_rate = models.BigIntegerField()
    utilization_permille = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "price history"

    def __str__(self) -> str:
        return f"{self.gpu_class_id} {self.on_demand_rate} at {self.created_at:%Y-%m-%d %H:%M}"


class SlaCredit(models.Model):
    block = models.ForeignKey(Block, on_delete=models.PROTECT, related_name="sla_credits")
    interval_start = models.DateTimeField()
    undelivered_gpus = models.PositiveIntegerField()
    amount = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["block_id", "interval_start"]
        constraints = [
            models.UniqueConstraint(fields=["block", "interval_start"],
                                    name="sla_once_per_interval"),
        ]

    def __str__(self) -> str:
        return f"SLA credit {self.amount} for block {self.block_id}"


class LowBalanceAlert(models.Model):
    organization = models.OneToOneField(Organization, on_delete=models.CASCADE,
                                        related_name="low_balance_alert")
    threshold = models.BigIntegerField()
    armed = models.BooleanField(default=True, help_text="sends once, re-armed on recovery")
    last_sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"alert below {self.threshold} for {self.organization_id}"


class SlaMultiple(models.Model):
    """The SLA credit multiple an admin set, kept as history: the one in force at an
    interval's start prices that interval's credits. In basis points of what the buyer
    paid for the undelivered GPU-hours (10000 = the price paid back once)."""

    multiple_bps = models.PositiveIntegerField()
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(multiple_bps__lte=100_000),
                                   name="sla_multiple_bounded"),
        ]

    def __str__(self) -> str:
        return f"SLA x{self.multiple_bps / 10_000:g} from {self.created_at:%Y-%m-%d %H:%M}"


class SlaPenalty(models.Model):
    """What a deposit that failed to deliver owes for the SLA credits it caused: taken
    from its provider's future yield first, else owed at once (its debt account)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        REPAID = "repaid", "Repaid from yield"
        OWED = "owed", "Owed"

    deposit = models.ForeignKey(CapacityDeposit, on_delete=models.PROTECT,
                                related_name="sla_penalties")
    credit = models.ForeignKey(SlaCredit, on_delete=models.PROTECT, related_name="penalties")
    provider = models.ForeignKey(Organization, on_delete=models.PROTECT,
                                 related_name="sla_penalties")
    amount = models.BigIntegerField()
    outstanding = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["deposit", "credit"], name="sla_penalty_once"),
            models.CheckConstraint(
                condition=models.Q(outstanding__gte=0)
                & models.Q(outstanding__lte=models.F("amount")),
                name="sla_penalty_outstanding_within_amount"),
        ]

    def __str__(self) -> str:
        return f"SLA penalty {self.outstanding}/{self.amount} of deposit {self.deposit_id}"
