"""The gate before anything that costs tokens."""

from banking.errors import DomainError, ErrorCode
from banking.models import Organization


def assert_can_spend(organization_id: int) -> None:
    status = Organization.objects.filter(pk=organization_id).values_list(
        "status", flat=True).first()
    if status == Organization.Status.FROZEN:
        raise DomainError("This organization is frozen; contact support.",
                          code=ErrorCode.ORGANIZATION_FROZEN, status=403)
    if status == Organization.Status.DELINQUENT:
        raise DomainError(
            "This organization has an overdue loan installment; pay it to continue.",
            code=ErrorCode.ORGANIZATION_DELINQUENT, status=403)
