"""May an organization spend? Other apps call this before they place a hold or start
anything that costs tokens."""

from banking.error_codes import BankingErrorCode
from banking.models import Account, Organization
from banking.models.ledger import AccountPurpose
from banking.standing import organization_standing_check
from core.errors import DomainError, NotFound


class OrganizationCannotSpend(DomainError):
    code = BankingErrorCode.ORGANIZATION_OWES
    status = 402


def organization_assert_can_spend(organization_id: int) -> None:
    """Raise when the organization may not spend: frozen (`OrganizationFrozen`, code
    `organization_frozen`), delinquent on a loan (`OrganizationDelinquent`,
    `organization_delinquent`), or owing tokens outside a credit line — its debt account is
    negative, e.g. after a card refund of spent tokens (`OrganizationCannotSpend`,
    `organization_owes`, 402, with `fields.owed`). A top-up repays the debt first."""
    org = Organization.objects.filter(pk=organization_id).only("status").first()
    if org is None:
        raise NotFound("Organization not found.")
    organization_standing_check(org.status, before="spending")
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
