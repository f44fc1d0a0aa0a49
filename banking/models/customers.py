from django.conf import settings
from django.db import models
from django.db.models.functions import Lower


class Organization(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        FROZEN = "frozen", "Frozen"
        DELINQUENT = "delinquent", "Delinquent"

    name = models.CharField(max_length=200, unique=True)
    is_buyer = models.BooleanField(default=True)
    is_provider = models.BooleanField(default=False)
    is_approved = models.BooleanField(
        default=True, help_text="Providers need an operator's approval before nodes go live."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    require_mfa = models.BooleanField(
        default=False, help_text="Every member needs a second factor to act (set by owners)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(is_buyer=True) | models.Q(is_provider=True),
                name="organization_is_buyer_or_provider",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        """What each may do is banking.roles' table."""

        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        BILLING = "billing", "Billing"
        DEVELOPER = "developer", "Developer"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.DEVELOPER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization_id", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class Invitation(models.Model):
    """A place in an organization held for an email address with no account yet. No user
    exists until the invitee signs up with its own password; the membership is made when
    it confirms the address (banking.services.customers.invitation_accept)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=16, choices=Membership.Role.choices)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["organization_id", "email"]
        constraints = [
            # One open invitation per address and organization: inviting again resends it.
            models.UniqueConstraint(
                fields=["organization", "email"], condition=models.Q(accepted_at=None),
                name="invitation_open_unique",
            ),
            # Addresses are kept lower-case, so the unique constraint above is case-blind.
            models.CheckConstraint(condition=models.Q(email=Lower("email")),
                                   name="invitation_email_lower"),
        ]

    def __str__(self) -> str:
        return f"{self.email} invited to {self.organization} ({self.role})"


class ApiKeyScope(models.TextChoices):
    READ = "read", "Read"
    JOBS = "jobs", "Jobs"
    BLOCKS = "blocks", "Blocks"
    BILLING = "billing", "Billing"
    PROVIDER = "provider", "Provider"
    PAYOUTS = "payouts", "Payouts"


def all_scopes() -> list[str]:
    return list(ApiKeyScope.values)


class ApiKey(models.Model):
    """Only a SHA-256 digest of the key is stored; the key itself is shown once.

    A key acts within its scopes and, while its creator is a member, within the
    creator's role (banking.roles); a key without a creator was issued by an operator.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="api_keys",
    )
    scopes = models.JSONField(default=all_scopes)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.organization})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
