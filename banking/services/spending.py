"""May an organization spend? Other apps call this before they place a hold or start
anything that costs tokens."""

from banking.errors import DomainError, ErrorCode, NotFound
from banking.models import Account, Organization
from banking.models.ledger import AccountPurpose

ORGANIZATION_OWES = "organization_owes"


class OrganizationCannotSpend(DomainError):
    code = ORGANIZATION_OWES
    status = 402


def organization_assert_can_spend(organization_id: int) -> None:
    """Raise `OrganizationCannotSpend` when the organization owes tokens outside a credit
    line (its debt account is negative, e.g. after a card refund of spent tokens: code
    `organization_owes`), is frozen (`organization_frozen`) or delinquent
    (`organization_delinquent`)."""
    org = Organization.objects.filter(pk=organization_id).only("status").first()
    if org is None:
        raise NotFound("Organization not found.")
    if org.status == Organization.Status.FROZEN:
        raise OrganizationCannotSpend(
            "This organization is frozen; contact support.",
            code=ErrorCode.ORGANIZATION_FROZEN,
            status=403,
        )
    if org.status == Organization.Status.DELINQUENT:
        raise OrganizationCannotSpend(
            "This organization has an overdue loan installment; pay it to continue.",
            code=ErrorCode.ORGANIZATION_DELINQUENT,
            status=403,
        )
    debt = (
        Account.objects.filter(organization_id=organization_id, purpose=AccountPurpose.DEBT)
        .values_list("balance", flat=True)
        .first()
    )
    if debt is not None and debt < 0:
        raise OrganizationCannotSpend(
            f"This organization owes {-debt} tokens (a refunded or disputed card payment); "
            "top up to repay them before spending.",
            fields={"owed": -debt},
        )
