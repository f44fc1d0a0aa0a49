"""Organizations, members and API keys."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from banking.account_security import account_standing_require, email_unverified
from banking.audit import audit_record
from banking.error_codes import AccessErrorCode
from banking.locks import organizations_lock
from banking.models import (
    Account,
    ApiKey,
    ApiKeyScope,
    AuditAction,
    Invitation,
    Membership,
    Organization,
)
from banking.models.ledger import AccountPurpose
from banking.roles import Action, action_require, role_allows, role_scopes
from core.errors import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied

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
    *, organization_id: int, user: User, role: str = Membership.Role.DEVELOPER
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


def _actor_membership(*, organization_id: int, user_id: int) -> Membership:
    membership = Membership.objects.filter(
        organization_id=organization_id, user_id=user_id
    ).first()
    if membership is None:
        raise PermissionDenied(
            "You are not a member of this organization.", code=AccessErrorCode.FORBIDDEN_ROLE
        )
    return membership


def _role_valid(role: str) -> None:
    if role not in Membership.Role.values:
        raise InvalidInput(f"Unknown role {role!r}.", fields={"role": ["Unknown role."]})


def _owners_require(actor: Membership) -> None:
    if not role_allows(actor.role, Action.OWNERS_MANAGE):
        raise PermissionDenied(
            "Only an owner may make, change or remove owners.",
            code=AccessErrorCode.FORBIDDEN_ROLE,
            fields={"role": ["Owners only."]},
        )


def _member_locked(*, organization_id: int, user_id: int) -> Membership:
    # Member changes serialize on the organization's row: "the last owner" is decided
    # under that lock, so two owners demoting each other cannot both succeed.
    organizations_lock([organization_id])
    membership = Membership.objects.filter(
        organization_id=organization_id, user_id=user_id
    ).first()
    if membership is None:
        raise NotFound("No such member.")
    return membership


def _last_owner_guard(membership: Membership) -> None:
    if membership.role == Membership.Role.OWNER and not Membership.objects.filter(
        organization_id=membership.organization_id, role=Membership.Role.OWNER
    ).exclude(pk=membership.pk).exists():
        raise Conflict(
            "An organization keeps at least one owner.", fields={"role": ["Last owner."]}
        )


@transaction.atomic
def member_remove(*, organization_id: int, actor_id: int, user_id: int) -> Membership:
    """Remove a member; every API key they created for the organization is revoked."""
    actor = _actor_membership(organization_id=organization_id, user_id=actor_id)
    action_require(role=actor.role, action=Action.MEMBERS_MANAGE)
    membership = _member_locked(organization_id=organization_id, user_id=user_id)
    if membership.role == Membership.Role.OWNER:
        _owners_require(actor)
    _last_owner_guard(membership)
    revoked = list(ApiKey.objects.filter(
        organization_id=organization_id, created_by_id=user_id, revoked_at__isnull=True
    ).values_list("prefix", flat=True))
    ApiKey.objects.filter(organization_id=organization_id, prefix__in=revoked).update(
        revoked_at=timezone.now()
    )
    membership.delete()
    audit_record(action=AuditAction.MEMBER_REMOVED, organization_id=organization_id,
                 target=f"user:{user_id}", actor_id=actor_id,
                 detail={"role": membership.role, "keys_revoked": revoked})
    return membership


@transaction.atomic
def member_role_change(
    *, organization_id: int, actor_id: int, user_id: int, role: str
) -> Membership:
    """Change a member's role. Only owners make or unmake owners; the last owner stays.
    The member's keys keep their scopes but act within the new role from now on."""
    _role_valid(role)
    actor = _actor_membership(organization_id=organization_id, user_id=actor_id)
    action_require(role=actor.role, action=Action.MEMBERS_MANAGE)
    membership = _member_locked(organization_id=organization_id, user_id=user_id)
    if Membership.Role.OWNER in (membership.role, role):
        _owners_require(actor)
    if role != Membership.Role.OWNER:
        _last_owner_guard(membership)
    if membership.role != role:
        audit_record(action=AuditAction.MEMBER_ROLE_CHANGED, organization_id=organization_id,
                     target=f"user:{user_id}", actor_id=actor_id,
                     detail={"from": membership.role, "to": role})
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def organization_require_mfa_set(*, organization_id: int, actor_id: int,
                                 required: bool) -> Organization:
    """Owners decide whether every member needs a second factor to act."""
    actor = _actor_membership(organization_id=organization_id, user_id=actor_id)
    action_require(role=actor.role, action=Action.OWNERS_MANAGE)
    org = organizations_lock([organization_id])[organization_id]
    if org.require_mfa != required:
        org.require_mfa = required
        org.save(update_fields=["require_mfa", "updated_at"])
        audit_record(action=AuditAction.MFA_POLICY_CHANGED, organization_id=organization_id,
                     target=f"organization:{organization_id}", actor_id=actor_id,
                     detail={"require_mfa": required})
    return org


@dataclass(frozen=True)
class MemberInvite:
    """Either a membership (the address already has an account, which signs in with its
    own password) or an open invitation (no account yet: the invitee signs up)."""

    email: str
    role: str
    membership: Membership | None = None
    invitation: Invitation | None = None
    account_exists: bool = True


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
def organization_found(
    *, name: str, owner_id: int, is_buyer: bool = True, is_provider: bool = False
) -> Membership:
    """A new organization whose owner is an existing user (who just signed up). A
    provider waits for an operator's approval before its nodes go live."""
    org = organization_create(
        name=name, is_buyer=is_buyer, is_provider=is_provider, is_approved=not is_provider
    )
    return Membership.objects.create(
        organization=org, user_id=owner_id, role=Membership.Role.OWNER
    )


@transaction.atomic
def member_invite(
    *, organization_id: int, invited_by_id: int, email: str, role: str = Membership.Role.DEVELOPER
) -> MemberInvite:
    """Add a member by email. Owners and admins may invite; only an owner makes owners.
    An account that confirmed the address becomes a member at once. An unknown address
    gets an open invitation and no user (nobody holds a password-less account the
    address's owner did not make), and so does an account that has not confirmed it; the
    invitation becomes a membership when the address is confirmed (`invitation_accept`).
    Inviting again keeps the one invitation, at the newest role."""
    inviter = _actor_membership(organization_id=organization_id, user_id=invited_by_id)
    action_require(role=inviter.role, action=Action.MEMBERS_MANAGE)
    _role_valid(role)
    if role == Membership.Role.OWNER:
        _owners_require(inviter)
    email = _normalized_email(email)
    user = (
        User.objects.filter(username__iexact=email).first()
        or User.objects.filter(email__iexact=email).first()
    )
    if user is not None and Membership.objects.filter(organization_id=organization_id,
                                                      user=user).exists():
        raise Conflict(
            f"{email} is already a member.", fields={"email": ["Already a member."]}
        )
    # An account that never confirmed this address may not be its owner's (anyone can
    # sign up with any address): it joins, like a newcomer, once it confirms.
    if user is None or email_unverified(user.pk):
        invitation, _ = Invitation.objects.update_or_create(
            organization_id=organization_id, email=email, accepted_at=None,
            defaults={"role": role, "invited_by_id": invited_by_id},
        )
        audit_record(action=AuditAction.MEMBER_INVITED, organization_id=organization_id,
                     target=f"invitation:{invitation.pk}", actor_id=invited_by_id,
                     detail={"email": email, "role": role, "new_user": user is None})
        return MemberInvite(email=email, role=role, invitation=invitation,
                            account_exists=user is not None)
    membership = Membership.objects.create(
        organization_id=organization_id, user=user, role=role
    )
    audit_record(action=AuditAction.MEMBER_INVITED, organization_id=organization_id,
                 target=f"user:{user.pk}", actor_id=invited_by_id,
                 detail={"email": email, "role": role, "new_user": False})
    return MemberInvite(email=email, role=role, membership=membership)


@transaction.atomic
def invitation_accept(*, user_id: int, email: str) -> list[Membership]:
    """The user proved it holds `email` (allauth confirmed the address): every open
    invitation to it becomes a membership. Confirming again changes nothing."""
    email = email.strip().lower()
    memberships = []
    for invitation in Invitation.objects.select_for_update().filter(
        email=email, accepted_at=None
    ).order_by("pk"):
        membership, _ = Membership.objects.get_or_create(
            organization_id=invitation.organization_id, user_id=user_id,
            defaults={"role": invitation.role},
        )
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        audit_record(action=AuditAction.MEMBER_JOINED,
                     organization_id=invitation.organization_id, target=f"user:{user_id}",
                     actor_id=user_id, detail={"email": email, "role": membership.role,
                                               "invitation": invitation.pk})
        memberships.append(membership)
    return memberships


API_KEY_MAX_LIFETIME = timedelta(days=2 * 365)


def _scopes_valid(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(ApiKeyScope.values))
    if unknown or not scopes or len(scopes) > len(ApiKeyScope.values):
        raise InvalidInput(
            "Pick one or more scopes: " + ", ".join(ApiKeyScope.values) + ".",
            fields={"scopes": ["Unknown: " + ", ".join(unknown) if unknown else "Required."]},
        )
    return [scope for scope in ApiKeyScope.values if scope in scopes]


@transaction.atomic
def api_key_issue(
    *,
    organization_id: int,
    name: str = "default",
    created_by_id: int | None = None,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> IssuedApiKey:
    """A new key. A member's key carries at most the scopes of their role (all of them
    by default) and acts within their role for as long as they are a member; without a
    creator (an operator's command) it carries the scopes asked for, all by default."""
    if created_by_id is not None:
        member = _actor_membership(organization_id=organization_id, user_id=created_by_id)
        action_require(role=member.role, action=Action.KEYS_OWN)
        account_standing_require(user_id=created_by_id, organization=member.organization,
                                 action=Action.KEYS_OWN)
        ceiling = role_scopes(member.role)
        wanted = _scopes_valid(scopes) if scopes is not None else sorted(ceiling)
        beyond = [scope for scope in wanted if scope not in ceiling]
        if beyond:
            raise PermissionDenied(
                f"Your role ({member.role}) cannot grant the scope(s) {', '.join(beyond)}.",
                code=AccessErrorCode.INSUFFICIENT_SCOPE,
                fields={"scopes": beyond},
            )
    else:
        wanted = _scopes_valid(scopes) if scopes is not None else list(ApiKeyScope.values)
    if expires_at is not None:
        now = timezone.now()
        if not now < expires_at <= now + API_KEY_MAX_LIFETIME:
            raise InvalidInput(
                "A key expires in the future and within two years.",
                fields={"expires_at": ["Out of range."]},
            )
    prefix = secrets.token_hex(6)
    secret = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        organization_id=organization_id,
        name=name.strip()[:100] or "default",
        prefix=prefix,
        key_hash=_hash_key(secret),
        created_by_id=created_by_id,
        scopes=[scope for scope in ApiKeyScope.values if scope in wanted],
        expires_at=expires_at,
    )
    audit_record(action=AuditAction.API_KEY_CREATED, organization_id=organization_id,
                 target=f"api_key:{prefix}", actor_id=created_by_id,
                 detail={"name": api_key.name, "scopes": api_key.scopes,
                         "expires_at": expires_at.isoformat() if expires_at else None})
    return IssuedApiKey(api_key=api_key, secret=secret)


@transaction.atomic
def api_key_revoke(
    *, organization_id: int, api_key_id: int, actor_id: int | None = None
) -> ApiKey:
    """Revoke a key. A member revokes their own keys; owners and admins anyone's."""
    api_key = ApiKey.objects.filter(pk=api_key_id, organization_id=organization_id).first()
    if api_key is None:
        raise NotFound("API key not found.")
    if actor_id is not None:
        actor = _actor_membership(organization_id=organization_id, user_id=actor_id)
        own = api_key.created_by_id == actor_id
        action_require(role=actor.role, action=Action.KEYS_OWN if own else Action.KEYS_MANAGE)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(action=AuditAction.API_KEY_REVOKED, organization_id=organization_id,
                     target=f"api_key:{api_key.prefix}", actor_id=actor_id,
                     detail={"name": api_key.name})
    return api_key


class ApiKeyExpired(DomainError):
    code = AccessErrorCode.KEY_EXPIRED
    status = 401


def api_key_authenticate(raw: str, *, client_ip: str | None = None) -> ApiKey | None:
    """The active key matching `raw`, or None; an expired one raises `ApiKeyExpired`.
    Marks it used (time and address) at most once a minute per address, so that
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
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise ApiKeyExpired(
            f"This API key expired at {api_key.expires_at.isoformat()}; create a new one."
        )
    resolution = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_S)
    if (
        api_key.last_used_at is None
        or now - api_key.last_used_at > resolution
        or (client_ip is not None and client_ip != api_key.last_used_ip)
    ):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now, last_used_ip=client_ip)
        api_key.last_used_at = now
        api_key.last_used_ip = client_ip
    return api_key


@transaction.atomic
def organization_set_status(*, organization_id: int, status: str) -> Organization:
    if status not in Organization.Status.values:
        raise InvalidInput(f"Unknown status {status!r}.")
    org = Organization.objects.select_for_update().filter(pk=organization_id).first()
    if org is None:
        raise NotFound("Organization not found.")
    if org.status != status:
        audit_record(action=AuditAction.ORGANIZATION_STATUS_CHANGED,
                     organization_id=organization_id, target=f"organization:{org.pk}",
                     detail={"from": org.status, "to": status})
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
    audit_record(action=AuditAction.ORGANIZATION_APPROVED, organization_id=organization_id,
                 target=f"organization:{organization_id}")
    return Organization.objects.get(pk=organization_id)
