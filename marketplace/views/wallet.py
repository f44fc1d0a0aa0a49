"""The wallet: balances, the statement (filters, CSV), spending per day."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from banking.errors import DomainError
from banking.exports import statement_csv_response
from banking.selectors import spend_per_day, statement_list, wallet_get
from marketplace.forms import LowBalanceAlertForm, StatementFilterForm, apply_domain_error
from marketplace.selectors import low_balance_alert_get
from marketplace.services.alerts import low_balance_alert_set
from marketplace.views.base import OrganizationRequest, organization_required

STATEMENT_PAGE_SIZE = 25
SPEND_CHART_DAYS = 30


@organization_required
def wallet(request: OrganizationRequest) -> HttpResponse:
    return _wallet_page(request)


def _wallet_page(
    request: OrganizationRequest, alert_form: LowBalanceAlertForm | None = None
) -> HttpResponse:
    org_id = request.organization.pk
    if alert_form is None:
        alert = low_balance_alert_get(organization_id=org_id)
        alert_form = LowBalanceAlertForm(initial={"threshold": alert.threshold if alert else None})
    filters = StatementFilterForm(request.GET or None)
    entries = statement_list(organization_id=org_id, **filters.filters())
    page = Paginator(entries, STATEMENT_PAGE_SIZE).get_page(request.GET.get("page"))
    spend = spend_per_day(organization_id=org_id, days=SPEND_CHART_DAYS)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "marketplace/wallet/wallet.html",
        {
            "nav": "wallet",
            "summary": wallet_get(organization_id=org_id),
            "filters": filters,
            "page": page,
            "filter_query": query.urlencode(),
            "spend": [{"day": day.isoformat(), "tokens": tokens} for day, tokens in spend],
            "spend_total": sum(tokens for _day, tokens in spend),
            "alert_form": alert_form,
        },
    )


@organization_required
@require_POST
def low_balance_alert(request: OrganizationRequest) -> HttpResponse:
    form = LowBalanceAlertForm(request.POST)
    if form.is_valid():
        threshold = form.cleaned_data["threshold"]
        try:
            low_balance_alert_set(organization_id=request.organization.pk, threshold=threshold)
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            messages.success(
                request,
                f"We will email your members when fewer than {threshold:,} tokens are available."
                if threshold else "Low-balance alerts are off.",
            )
            return redirect("store:wallet")
    return _wallet_page(request, alert_form=form)


@organization_required
def statement_csv(request: OrganizationRequest) -> HttpResponse | StreamingHttpResponse:
    """The same rows as the page (every page of them), as the API's CSV."""
    filters = StatementFilterForm(request.GET or None)
    entries = statement_list(organization_id=request.organization.pk, **filters.filters())
    return statement_csv_response(entries)


@organization_required
def spend_json(request: OrganizationRequest) -> JsonResponse:
    days = spend_per_day(organization_id=request.organization.pk, days=SPEND_CHART_DAYS)
    return JsonResponse({"days": [{"day": d.isoformat(), "tokens": t} for d, t in days]})


@organization_required
def transfer_detail(request: OrganizationRequest, transfer_id: int) -> HttpResponse:
    """One transfer as this organization sees it: its entries on the organization's own
    accounts. Another organization's transfer is a 404."""

    rows = list(
        statement_list(organization_id=request.organization.pk).filter(transfer_id=transfer_id)
    )
    if not rows:
        raise Http404("Transfer not found.")
    return render(
        request,
        "marketplace/wallet/transfer_detail.html",
        {"nav": "wallet", "transfer": rows[0].transfer, "entries": rows},
    )
