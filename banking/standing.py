"""An organization's standing, in one place: may it act, and may it spend?

Every service asks here before an organization buys, submits, deposits, draws an advance,
cashes out, takes credit or has its nodes given work. Refusals, each with its own code:
- `organization_frozen`: an operator froze it (every act, a top-up included);
- `organization_not_approved`: a provider not yet approved by an operator (every act);
- `organization_delinquent`: overdue installments past their grace period (acts that
  spend, borrow or take tokens out; a top-up stays open to it, so that it can pay);
- `organization_owes`: its debt account is negative, e.g. after a card refund of spent
  tokens (acts that spend or take tokens out; a top-up repays the debt first).

It lives beside the models rather than in `services/` because the lending selectors
check it too, and `banking.services` already imports them: inside `services/` it would
close a circle."""

from enum import StrEnum

from django.db.models import Q

from banking.errors import (
    OrganizationCannotSpend,
    OrganizationDelinquent,
    OrganizationFrozen,
    OrganizationNotApproved,
)
from banking.models import Account, Organization
from banking.models.ledger import AccountPurpose
from core.errors import NotFound


class Act(StrEnum):
    BUY = "buy"
    SUBMIT = "submit"
    DEPOSIT = "deposit"
    ADVANCE = "advance"
    PAYOUT = "payout"
    NODE_WORK = "node_work"


# Acts that spend tokens or take them out of the bank: an organization that owes may not.
_SPENDING_ACTS = frozenset({Act.BUY, Act.SUBMIT, Act.ADVANCE, Act.PAYOUT})


def organization_may_act_q(prefix: str = "") -> Q:
    """The rule of `organization_assert_may_act` for every act, as a filter: approved and
    not frozen. `prefix` reaches the organization through a relation (`"provider__"`), so
    other apps filter their rows by it without restating it."""
    return Q(**{f"{prefix}is_approved": True}) & ~Q(
        **{f"{prefix}status": Organization.Status.FROZEN}
    )


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


def _debt_owed(organization_id: int) -> int:
    """Tokens owed outside a credit line (0 when none)."""
    debt = (
        Account.objects.filter(organization_id=organization_id, purpose=AccountPurpose.DEBT)
        .values_list("balance", flat=True)
        .first()
    )
    return -debt if debt is not None and debt < 0 else 0


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
    owed = _debt_owed(organization_id)
    if owed:
        raise OrganizationCannotSpend(
            f"This organization owes {owed} tokens (a refunded or disputed card payment); "
            "top up to repay them before spending.",
            fields={"owed": owed},
        )


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
    owed = _debt_owed(org.pk)
    if owed:
        reasons.append(f"owes {owed} tokens")
    return reasons
