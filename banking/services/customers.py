"""Organizations, members and API keys."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from banking.models import Account, ApiKey, Membership, Organization
from banking.models.ledger import AccountPurpose
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied

API_KEY_PREFIX = "sk"


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    secret: str  # shown once, never stored


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def organization_create(
    *, name: str, is_buyer: bool = True, is_provider: bool = False, is_approved: bool = True
) -> Organization:
    name = name.strip()
    if not name:
        raise InvalidInput("An organization needs a name.", fields={"name": ["Required."]})
    if not (is_buyer or is_provider):
        raise InvalidInput("An organization is a buyer, a provider or both.")
    try:
        with transaction.atomic():
            org = Organization.objects.create(
                name=name, is_buyer=is_buyer, is_provider=is_provider, is_approved=is_approved
            )
    except IntegrityError as exc:
        raise Conflict(
            f"An organization named {name!r} already exists.",
            fields={"name": ["Already taken."]},
        ) from exc
    Account.objects.bulk_create(
        [
            Account(organization=org, purpose=AccountPurpose.WALLET, floor=0),
            Account(organization=org, purpose=AccountPurpose.HELD, floor=0),
            Account(organization=org, purpose=AccountPurpose.CREDIT, floor=0),
            Account(organization=org, purpose=AccountPurpose.DEBT, floor=None),
            Account(organization=org, purpose=AccountPurpose.PAYABLE, floor=0),
        ]
    )
    return org


@transaction.atomic
def membership_add(
    *, organization_id: int, user: User, role: str = Membership.Role.MEMBER
) -> Membership:
    if role not in Membership.Role.values:
        raise InvalidInput(f"Unknown role {role!r}.", fields={"role": ["Unknown role."]})
    membership, created = Membership.objects.get_or_create(
        organization_id=organization_id, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@dataclass(frozen=True)
class MemberInvite:
    membership: Membership
    user_created: bool  # a new user has no password yet: send them a link to set one


def _normalized_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise InvalidInput("Enter a valid email address.", fields={"email": ["Invalid."]})
    return email


@transaction.atomic
def organization_signup(
    *, name: str, email: str, password: str, is_buyer: bool = True, is_provider: bool = False
) -> Membership:
    """A new user and a new organization, the user its owner. A provider waits for an
    operator's approval before its nodes go live."""
    email = _normalized_email(email)
    if User.objects.filter(username__iexact=email).exists() or User.objects.filter(
        email__iexact=email
    ).exists():
        raise Conflict(
            "An account with this email already exists. Log in instead.",
            fields={"email": ["Already registered."]},
        )
    org = organization_create(
        name=name, is_buyer=is_buyer, is_provider=is_provider, is_approved=not is_provider
    )
    user = User.objects.create_user(username=email, email=email, password=password)
    return Membership.objects.create(
        organization=org, user=user, role=Membership.Role.OWNER
    )


@transaction.atomic
def member_invite(
    *, organization_id: int, invited_by_id: int, email: str, role: str = Membership.Role.MEMBER
) -> MemberInvite:
    """Add a member by email. Owners and admins may invite; only an owner makes owners.
    An unknown email gets a new user without a password."""
    inviter = Membership.objects.filter(
        organization_id=organization_id, user_id=invited_by_id
    ).first()
    if inviter is None or inviter.role not in (Membership.Role.OWNER, Membership.Role.ADMIN):
        raise PermissionDenied("Only owners and admins may add members.")
    if role not in Membership.Role.values:
        raise InvalidInput(f"Unknown role {role!r}.", fields={"role": ["Unknown role."]})
    if role == Membership.Role.OWNER and inviter.role != Membership.Role.OWNER:
        raise PermissionDenied(
            "Only an owner may add another owner.", fields={"role": ["Owners only."]}
        )
    email = _normalized_email(email)
    user = (
        User.objects.filter(username__iexact=email).first()
        or User.objects.filter(email__iexact=email).first()
    )
    created = user is None
    if user is None:
        user = User.objects.create_user(username=email, email=email, password=None)
    elif Membership.objects.filter(organization_id=organization_id, user=user).exists():
        raise Conflict(
            f"{email} is already a member.", fields={"email": ["Already a member."]}
        )
    membership = Membership.objects.create(
        organization_id=organization_id, user=user, role=role
    )
    return MemberInvite(membership=membership, user_created=created)


def api_key_issue(*, organization_id: int, name: str = "default") -> IssuedApiKey:
    prefix = secrets.token_hex(6)
    secret = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        organization_id=organization_id,
        name=name.strip()[:100] or "default",
        prefix=prefix,
        key_hash=_hash_key(secret),
    )
    return IssuedApiKey(api_key=api_key, secret=secret)


def api_key_revoke(*, organization_id: int, api_key_id: int) -> ApiKey:
    api_key = ApiKey.objects.filter(pk=api_key_id, organization_id=organization_id).first()
    if api_key is None:
        raise NotFound("API key not found.")
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The active key matching `raw`, or None. Marks it used at most once a minute so that
    authentication does not write on every request."""
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    api_key = (
        ApiKey.objects.select_related("organization")
        .filter(prefix=parts[1], revoked_at__isnull=True)
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _hash_key(raw.strip())):
        return None
    now = timezone.now()
    resolution = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_S)
    if api_key.last_used_at is None or now - api_key.last_used_at > resolution:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


@transaction.atomic
def organization_set_status(*, organization_id: int, status: str) -> Organization:
    if status not in Organization.Status.values:
        raise InvalidInput(f"Unknown status {status!r}.")
    org = Organization.objects.select_for_update().filter(pk=organization_id).first()
    if org is None:
        raise NotFound("Organization not found.")
    org.status = status
    org.save(update_fields=["status", "updated_at"])
    return org


@transaction.atomic
def organization_approve(*, organization_id: int) -> Organization:
    updated = Organization.objects.filter(pk=organization_id).update(
        is_approved=True, updated_at=timezone.now()
    )
    if not updated:
        raise NotFound("Organization not found.")
    return Organization.objects.get(pk=organization_id)
