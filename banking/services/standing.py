"""May an organization act? The one check every service asks before an organization
buys, submits, deposits, draws an advance, cashes out or has its nodes given work.

Refusals, each with its own code:
- `organization_frozen`: an operator froze it (every act);
- `organization_not_approved`: a provider not yet approved by an operator (every act);
- `organization_delinquent` / `organization_owes`: overdue installments or owed tokens
  (acts that spend or take tokens out: buy, submit, advance, payout).
"""

from enum import StrEnum

from banking.error_codes import BankingErrorCode
from banking.errors import OrganizationFrozen
from banking.models import Account, Organization
from banking.models.ledger import AccountPurpose
from banking.services.spending import organization_assert_can_spend
from core.errors import DomainError, NotFound


class Act(StrEnum):
    BUY = "buy"
    SUBMIT = "submit"
    DEPOSIT = "deposit"
    ADVANCE = "advance"
    PAYOUT = "payout"
    NODE_WORK = "node_work"


# Acts that spend tokens or take them out of the bank: an organization that owes may not.
_SPENDING_ACTS = frozenset({Act.BUY, Act.SUBMIT, Act.ADVANCE, Act.PAYOUT})


class OrganizationNotApproved(DomainError):
    code: str = BankingErrorCode.ORGANIZATION_NOT_APPROVED
    status = 403


def organization_assert_may_act(organization_id: int, act: Act) -> None:
    """Raise the refusal of `act` for this organization, or return when it may."""
    org = Organization.objects.filter(pk=organization_id).only("status", "is_approved").first()
    if org is None:
        raise NotFound("Organization not found.")
    if org.status == Organization.Status.FROZEN:
        raise OrganizationFrozen(f"This organization is frozen and cannot {act.replace('_', ' ')}"
                                 "; contact support.", fields={"act": act.value})
    if not org.is_approved:
        raise OrganizationNotApproved(
            f"This organization is not approved yet and cannot {act.replace('_', ' ')}; an "
            "operator reviews new providers.", fields={"act": act.value})
    if act in _SPENDING_ACTS:
        organization_assert_can_spend(organization_id)


def organization_block_reasons(org: Organization) -> list[str]:
    """Why an organization cannot act, in words an operator reads (empty: it can)."""
    reasons = []
    if org.status == Organization.Status.FROZEN:
        reasons.append("frozen by an operator")
    if not org.is_approved:
        reasons.append("not approved")
    if org.status == Organization.Status.DELINQUENT:
        reasons.append("delinquent: overdue installments past grace")
    debt = (Account.objects.filter(organization_id=org.pk, purpose=AccountPurpose.DEBT)
            .values_list("balance", flat=True).first())
    if debt is not None and debt < 0:
        reasons.append(f"owes {-debt} tokens")
    return reasons
