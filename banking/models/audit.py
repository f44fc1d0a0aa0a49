import pgtrigger
from django.db import models


class AuditAction(models.TextChoices):
    API_KEY_CREATED = "api_key.created", "API key created"
    API_KEY_REVOKED = "api_key.revoked", "API key revoked"
    MEMBER_INVITED = "member.invited", "Member invited"
    MEMBER_JOINED = "member.joined", "Invited member joined"
    MEMBER_REMOVED = "member.removed", "Member removed"
    MEMBER_ROLE_CHANGED = "member.role_changed", "Member's role changed"
    MFA_ENABLED = "mfa.enabled", "Second factor turned on"
    MFA_DISABLED = "mfa.disabled", "Second factor turned off"
    MFA_POLICY_CHANGED = "mfa.policy_changed", "Second factor required or not"
    PAYOUT_ACCOUNT_CHANGED = "payout_account.changed", "Payout account changed"
    PAYOUT_REQUESTED = "payout.requested", "Payout requested"
    PAYOUT_APPROVED = "payout.approved", "Payout approved"
    PAYOUT_REJECTED = "payout.rejected", "Payout rejected"
    ORGANIZATION_APPROVED = "organization.approved", "Organization approved"
    ORGANIZATION_STATUS_CHANGED = "organization.status_changed", "Organization frozen or unfrozen"
    NODE_APPROVED = "node.approved", "Node approved"
    CREDIT_LINE_SET = "credit_line.set", "Credit line set"
    TRANSFER_REVERSED = "transfer.reversed", "Transfer reversed"
    LOAN_WRITTEN_OFF = "loan.written_off", "Loan written off"
    ADMIN_CHANGE = "admin.change", "Changed in the admin"


@pgtrigger.register(
    pgtrigger.Protect(name="audit_append_only", operation=pgtrigger.Update | pgtrigger.Delete)
)
class AuditEvent(models.Model):
    """One security-relevant act. Append-only: PostgreSQL refuses UPDATE and DELETE. Who
    and what are kept as ids and labels, not foreign keys, so that deleting a user or an
    organization never has to touch the trail."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=40, choices=AuditAction.choices)
    organization_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=254, blank=True, help_text="email, key or system")
    target = models.CharField(max_length=120, blank=True)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor or 'system'}"
