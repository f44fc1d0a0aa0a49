"""An organization's standing, the one rule: frozen, it can do nothing that moves money;
delinquent on a loan, nothing new until it pays what is overdue (a top-up stays open to
it, so that it can)."""

from banking.errors import OrganizationDelinquent, OrganizationFrozen
from banking.models import Organization


def organization_frozen_refuse(status: str) -> None:
    """Raise `OrganizationFrozen` (`organization_frozen`) for a frozen organization."""
    if status == Organization.Status.FROZEN:
        raise OrganizationFrozen("This organization is frozen; contact support.")


def organization_standing_check(status: str, *, before: str) -> None:
    """Raise for a frozen organization, or for a delinquent one (`OrganizationDelinquent`,
    `organization_delinquent`), which must pay its overdue installments `before` doing
    what it asked."""
    organization_frozen_refuse(status)
    if status == Organization.Status.DELINQUENT:
        raise OrganizationDelinquent(
            "This organization has overdue loan installments past their grace period; pay "
            f"them (POST /api/v1/loans/{{id}}/prepay/) before {before}."
        )
