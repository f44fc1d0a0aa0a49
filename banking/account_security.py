"""What a person's account must have before they act for an organization, beyond their
role: a verified email for anything but reading, and a second factor where the
organization asks for one (its owners' choice), or, once it has a payout account, for
whoever moves money. Refusals say `email_unverified` or `mfa_required`."""

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator

from banking.error_codes import AccessErrorCode
from banking.models import Organization, PayoutAccount
from banking.roles import MONEY_MOVING, Action
from core.errors import PermissionDenied

READING = frozenset({Action.READ, Action.AUDIT_READ})


def email_unverified(user_id: int) -> bool:
    """True while the user signed up with an address they have not confirmed. Users made
    by operators, commands and the demo (no address on file with allauth) are not."""
    addresses = list(EmailAddress.objects.filter(user_id=user_id).values_list("verified",
                                                                              flat=True))
    return bool(addresses) and not any(addresses)


def has_second_factor(user_id: int) -> bool:
    return Authenticator.objects.filter(user_id=user_id,
                                        type=Authenticator.Type.TOTP).exists()


def mfa_required(organization: Organization, action: Action) -> bool:
    if action in READING:
        return False
    if organization.require_mfa:
        return True
    return action in MONEY_MOVING and PayoutAccount.objects.filter(
        organization_id=organization.pk
    ).exists()


def account_standing_require(*, user_id: int, organization: Organization,
                             action: Action) -> None:
    if action in READING:
        return
    if email_unverified(user_id):
        raise PermissionDenied(
            "Confirm your email address first: follow the link we emailed you.",
            code=AccessErrorCode.EMAIL_UNVERIFIED,
        )
    if mfa_required(organization, action) and not has_second_factor(user_id):
        raise PermissionDenied(
            f"{organization.name} requires a second factor for this: turn on two-factor "
            "authentication under Security.",
            code=AccessErrorCode.MFA_REQUIRED,
        )
