"""The wallet's auto top-up settings (the charging itself is banking's, on a schedule)."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from banking.models import Membership
from banking.services.auto_topup import auto_topup_set
from core.errors import DomainError
from marketplace.forms import AutoTopUpForm, words_for_fields
from marketplace.views.base import OrganizationRequest, organization_required

# the roles that move money (a billing role, when the members' roles gain one, belongs here)
MONEY_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


@organization_required
@require_POST
def auto_topup(request: OrganizationRequest) -> HttpResponse:
    if request.membership.role not in MONEY_ROLES:
        messages.error(request, "Only an owner or an admin can set auto top-up.")
        return redirect("store:wallet")
    form = AutoTopUpForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{form.fields[name].label}: {' '.join(map(str, errors))}"
                             for name, errors in form.errors.items() if name in form.fields)
        messages.error(request, f"Auto top-up not saved. {problems}")
        return redirect("store:wallet")
    d = form.cleaned_data
    try:
        config = auto_topup_set(organization_id=request.organization.pk,
                                threshold=d["threshold"], amount_cents=d["amount_usd"] * 100,
                                payment_method=d["payment_method"], enabled=d["enabled"])
    except DomainError as exc:
        messages.error(request, f"Auto top-up not saved. {words_for_fields(exc.message)}")
        return redirect("store:wallet")
    if config.enabled:
        messages.success(request, f"Auto top-up on: below {config.threshold:,} tokens your "
                                  f"card is charged ${config.amount_cents / 100:,.2f}.")
    else:
        messages.success(request, "Auto top-up is off.")
    return redirect("store:wallet")
