"""The organization's audit trail, for its owners: a page and a CSV export."""

from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from banking.exports import audit_csv_response
from banking.roles import Action, role_allows
from banking.selectors import audit_event_list
from marketplace.uncounted_pages import uncounted_page
from marketplace.views.base import OrganizationRequest, forbidden_page, organization_required


@organization_required
def audit(request: OrganizationRequest) -> HttpResponse:
    if not role_allows(request.membership.role, Action.AUDIT_READ):
        return forbidden_page(request, Action.AUDIT_READ)
    page = uncounted_page(audit_event_list(organization_id=request.organization.pk), 50,
                          request.GET.get("page"))
    return render(request, "marketplace/accounts/audit.html", {"nav": "members", "page": page})


@organization_required
def audit_csv(request: OrganizationRequest) -> HttpResponse | StreamingHttpResponse:
    if not role_allows(request.membership.role, Action.AUDIT_READ):
        return forbidden_page(request, Action.AUDIT_READ)
    return audit_csv_response(
        audit_event_list(organization_id=request.organization.pk).order_by("id"),
        filename=f"audit-{request.organization.pk}.csv",
    )
