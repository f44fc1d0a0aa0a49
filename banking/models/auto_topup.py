"""Auto top-up: when the wallet falls below a threshold, the organization's saved card is
charged off-session for a set amount, at most once per interval."""

from django.db import models

from banking.models.customers import Organization
from banking.models.payments import TopUp


class AutoTopUp(models.Model):
    organization = models.OneToOneField(Organization, on_delete=models.PROTECT,
                                         related_name="auto_topup")
    enabled = models.BooleanField(default=True)
    threshold = models.BigIntegerField(help_text="charge when fewer tokens are available")
    amount_cents = models.PositiveIntegerField(help_text="what each auto top-up pays, in cents")
    currency = models.CharField(max_length=3, default="usd")
    payment_method = models.CharField(max_length=255, help_text="the saved card (pm_...)")
    # Paused after a decline or an authentication request: nobody is at the card, so the
    # owners are told and the card is not tried again until they save the settings again.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=500, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_topup = models.ForeignKey(TopUp, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(threshold__gt=0),
                                   name="auto_topup_threshold_positive"),
            models.CheckConstraint(condition=models.Q(amount_cents__gt=0),
                                   name="auto_topup_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"auto top-up of {self.organization_id} below {self.threshold}"
