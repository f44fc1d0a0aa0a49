"""Outbound webhooks: an organization's endpoints, the events that happened to it, and
one delivery row per attempt (what was sent, what came back)."""

from django.db import models

from banking.models.customers import Organization


class WebhookEventType(models.TextChoices):
    JOB_SUCCEEDED = "job.succeeded", "Job succeeded"
    JOB_FAILED = "job.failed", "Job failed"
    JOB_CANCELED = "job.canceled", "Job canceled"
    WALLET_LOW_BALANCE = "wallet.low_balance", "Wallet below its alert threshold"


class WebhookEndpoint(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE,
                                     related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    events = models.JSONField(help_text="event types this endpoint receives")
    # Kept readable: every delivery is signed with it (as Stripe keeps its endpoints').
    secret = models.CharField(max_length=64)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} {self.url}"


class WebhookEvent(models.Model):
    """Something that happened, once: `key` makes a second emission of the same fact a
    no-op (one `job.succeeded` per job, whoever reports it how often)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE,
                                     related_name="webhook_events")
    type = models.CharField(max_length=32, choices=WebhookEventType.choices)
    key = models.CharField(max_length=200, unique=True)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.key}"


class WebhookMessage(models.Model):
    """One event for one endpoint, delivered at most once successfully: a worker claims it
    for a while before calling out, so no two workers send it at once."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE,
                                 related_name="messages")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="messages")
    attempts = models.PositiveIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    given_up_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_message_once"),
        ]

    def __str__(self) -> str:
        return f"message {self.event_id} -> {self.endpoint_id}"


class WebhookDelivery(models.Model):
    """One attempt: the answer's status (null when there was none) and what went wrong."""

    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE,
                                related_name="deliveries")
    attempt = models.PositiveIntegerField()
    status_code = models.IntegerField(null=True, blank=True)
    succeeded = models.BooleanField(default=False)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "attempt"], name="webhook_attempt_once"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.message_id}#{self.attempt} {self.status_code}"
