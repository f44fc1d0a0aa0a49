"""Card top-ups, inbound Stripe events, disputes and provider payouts.

Fiat lives only here, at the edge: integer minor units (cents) and a lower-case ISO
currency code, exactly as Stripe spells them. Everything in the ledger stays in tokens.
"""

from django.conf import settings
from django.db import models

from banking.models.customers import Organization
from banking.models.ledger import Hold, Transfer


class TokenPrice(models.Model):
    """What 1M tokens cost in one currency at top-up, set by an admin. Volume tiers
    (`TokenPriceTier`) lower the price for larger payments."""

    currency = models.CharField(max_length=3, unique=True, help_text="ISO code, lower case.")
    cents_per_million = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        help_text="Price of 1,000,000 tokens in minor units (cents), e.g. 30 = USD 0.30.",
    )
    min_amount_cents = models.PositiveIntegerField(default=100)
    max_amount_cents = models.PositiveIntegerField(default=1_000_000)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["currency"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cents_per_million__gt=0), name="token_price_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(min_amount_cents__gt=0)
                & models.Q(max_amount_cents__gte=models.F("min_amount_cents")),
                name="token_price_min_max",
            ),
            models.CheckConstraint(
                condition=models.Q(currency__regex=r"^[a-z]{3}$"),
                name="token_price_currency_lower_iso",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.currency.upper()} {self.cents_per_million} cents / 1M tokens"


class TokenPriceTier(models.Model):
    """From `min_amount_cents` up, 1M tokens cost `cents_per_million` instead."""

    price = models.ForeignKey(TokenPrice, on_delete=models.CASCADE, related_name="tiers")
    min_amount_cents = models.PositiveIntegerField()
    cents_per_million = models.DecimalField(max_digits=14, decimal_places=6)

    class Meta:
        ordering = ["price_id", "min_amount_cents"]
        constraints = [
            models.UniqueConstraint(
                fields=["price", "min_amount_cents"], name="token_price_tier_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(cents_per_million__gt=0), name="token_price_tier_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"from {self.min_amount_cents} cents: {self.cents_per_million} / 1M"


class StripeCustomer(models.Model):
    """The organization's customer at the payment provider, created on first top-up."""

    organization = models.OneToOneField(
        Organization, on_delete=models.PROTECT, related_name="stripe_customer"
    )
    customer_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.customer_id} ({self.organization_id})"


class TopUp(models.Model):
    """A card payment that buys tokens at the price locked when it was created."""

    class Status(models.TextChoices):
        CREATED = "created", "Created"  # recorded; the PaymentIntent is not created yet
        PENDING = "pending", "Awaiting payment"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="topups")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    tokens = models.BigIntegerField()
    cents_per_million = models.DecimalField(max_digits=14, decimal_places=6)
    idempotency_key = models.CharField(max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    client_secret = models.CharField(max_length=255, blank=True)
    # The PaymentIntent's own status when last seen: "requires_action" tells the buyer's
    # browser to run the card issuer's authentication (3-D Secure) through Stripe.js.
    payment_status = models.CharField(max_length=32, blank=True)
    charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    credit_transfer = models.OneToOneField(
        Transfer, null=True, blank=True, on_delete=models.PROTECT, related_name="topup"
    )
    refunded_cents = models.PositiveIntegerField(default=0)
    refunded_tokens = models.BigIntegerField(default=0)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(tokens__gt=0), name="topup_tokens_positive"),
            models.CheckConstraint(
                condition=models.Q(amount_cents__gt=0), name="topup_amount_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(refunded_cents__lte=models.F("amount_cents"))
                & models.Q(refunded_tokens__gte=0)
                & models.Q(refunded_tokens__lte=models.F("tokens")),
                name="topup_refund_within_payment",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="succeeded") | models.Q(credit_transfer__isnull=False),
                name="topup_succeeded_is_credited",
            ),
        ]

    def __str__(self) -> str:
        return f"top-up #{self.pk} {self.amount_cents} {self.currency} ({self.status})"


class StripeEvent(models.Model):
    """An inbound webhook event, stored once under Stripe's event id."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"


class Dispute(models.Model):
    """A chargeback on a top-up: the disputed tokens are held until it closes."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    dispute_id = models.CharField(max_length=255, unique=True)
    topup = models.ForeignKey(TopUp, on_delete=models.PROTECT, related_name="disputes")
    amount_cents = models.PositiveIntegerField()
    tokens = models.BigIntegerField(help_text="Tokens the disputed amount bought.")
    hold = models.OneToOneField(
        Hold, null=True, blank=True, on_delete=models.PROTECT, related_name="dispute"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    reason = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"dispute {self.dispute_id} on top-up #{self.topup_id}"


class PayoutAccount(models.Model):
    """A provider's payout profile: its connected Stripe account."""

    organization = models.OneToOneField(
        Organization, on_delete=models.PROTECT, related_name="payout_account"
    )
    stripe_account_id = models.CharField(max_length=255)
    auto_payout_threshold = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Tokens above this are paid out by the daily sweep; empty: no sweep.",
    )
    verified_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the gateway last confirmed charges and payouts are enabled on it.")
    payouts_held_until = models.DateTimeField(
        null=True, blank=True, help_text="A changed account is not paid out to before this.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(auto_payout_threshold__isnull=True)
                | models.Q(auto_payout_threshold__gte=0),
                name="payout_account_threshold_non_negative",
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} -> {self.stripe_account_id}"


class Payout(models.Model):
    """Tokens cashed out to a provider's connected account. The tokens are held from the
    request on; a paid payout captures the hold into payout clearing, a failed or
    rejected one releases it."""

    class Status(models.TextChoices):
        PENDING_APPROVAL = "pending_approval", "Awaiting approval"
        APPROVED = "approved", "Approved"
        PROCESSING = "processing", "Processing"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="payouts"
    )
    tokens = models.BigIntegerField()
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    destination = models.CharField(max_length=255, help_text="Connected account, acct_...")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING_APPROVAL
    )
    hold = models.OneToOneField(Hold, on_delete=models.PROTECT, related_name="payout")
    idempotency_key = models.CharField(max_length=255, unique=True)
    is_sweep = models.BooleanField(default=False)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    stripe_transfer_id = models.CharField(max_length=255, blank=True, db_index=True)
    failure_message = models.CharField(max_length=500, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    executed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(tokens__gt=0), name="payout_tokens_positive"),
            models.CheckConstraint(
                condition=models.Q(amount_cents__gt=0), name="payout_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"payout #{self.pk} {self.tokens} tokens ({self.status})"
