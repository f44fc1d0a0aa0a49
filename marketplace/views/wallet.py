"""The wallet: balances, top-ups by card, the statement (filters, CSV), spending per day."""

import csv
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from banking.exports import statement_csv_response
from banking.fiat_display import usd_for_tokens
from banking.models import TopUp
from banking.selectors import spend_per_day, statement_list, topup_get, wallet_get
from banking.services.auto_topup import auto_topup_get
from banking.services.payments import topup_create, topup_quote
from core.errors import DomainError
from marketplace.forms import (
    AutoTopUpForm,
    LowBalanceAlertForm,
    StatementFilterForm,
    TopUpForm,
    apply_domain_error,
)
from marketplace.selectors import low_balance_alert_get
from marketplace.services.alerts import low_balance_alert_set
from marketplace.statement import statement_lines
from marketplace.uncounted_pages import uncounted_page
from marketplace.views.base import (
    OrganizationRequest,
    confirm_page,
    confirmed,
    found_or_404,
    organization_required,
)

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
    # the ledger's own filters (kind, account) ask for ledger lines
    ledger_view = (request.GET.get("view") == "ledger" or bool(request.GET.get("kind"))
                   or bool(request.GET.get("account")))
    if ledger_view:
        rows: Any = statement_list(organization_id=org_id, **filters.filters())
    else:
        dates = filters.filters()
        rows = statement_lines(organization_id=org_id, date_from=dates.get("date_from"),
                               date_to=dates.get("date_to"))
    page = uncounted_page(rows, STATEMENT_PAGE_SIZE, request.GET.get("page"))
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
            "ledger_view": ledger_view,
            "spend": [{"day": day.isoformat(), "tokens": tokens} for day, tokens in spend],
            "spend_total": sum(tokens for _day, tokens in spend),
            "alert_form": alert_form,
            "topup_form": TopUpForm(card_entry=_card_entry()),
            "topup_price": _price_line(),
            **_auto_topup_context(org_id),
        },
    )


def _card_entry() -> bool:
    """Cards are entered into Stripe Elements whenever Stripe.js can be used (a
    publishable key is configured); the fake gateway of the demo takes a test card."""
    return bool(settings.STRIPE_PUBLISHABLE_KEY)


@organization_required
@require_POST
def topup(request: OrganizationRequest) -> HttpResponse:
    card_entry = _card_entry()
    form = TopUpForm(request.POST, card_entry=card_entry)
    if not form.is_valid():
        messages.error(request, "Check the amount and the card.")
        return redirect("store:wallet")
    amount_cents = form.cleaned_data["amount_usd"] * 100
    if not confirmed(request):
        try:
            quote = topup_quote(currency="usd", amount_cents=amount_cents)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("store:wallet")
        pay = f"USD {quote.amount_cents / 100:,.2f}"
        if card_entry:
            return confirm_page(
                request, title="Confirm your top-up",
                text=f"Pay {pay} for {quote.tokens:,} tokens? You enter your card next.",
                button="Continue to card details", cancel_url="/wallet/")
        return confirm_page(
            request, title="Confirm your top-up",
            text=f"Pay {pay} with card {form.cleaned_data['payment_method']} "
                 f"for {quote.tokens:,} tokens?",
            button=f"Pay {pay}", cancel_url="/wallet/")
    try:
        done = topup_create(
            organization_id=request.organization.pk, currency="usd",
            amount_cents=amount_cents, idempotency_key=form.posting_key,
            payment_method=None if card_entry else form.cleaned_data["payment_method"].strip(),
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("store:wallet")
    if card_entry and done.status in (TopUp.Status.CREATED, TopUp.Status.PENDING):
        return redirect("store:topup_pay", topup_id=done.pk)
    _topup_outcome_message(request, done)
    return redirect("store:wallet")


@organization_required
def topup_pay(request: OrganizationRequest, topup_id: int) -> HttpResponse:
    """Card details go into Stripe Elements in the browser; its script confirms through
    `POST /api/v1/topups/{id}/confirm/` and comes back here when the payment is done."""
    topup = found_or_404(
        lambda: topup_get(organization_id=request.organization.pk, topup_id=topup_id)
    )
    if topup.status in (TopUp.Status.SUCCEEDED, TopUp.Status.CANCELED) or not _card_entry():
        _topup_outcome_message(request, topup)
        return redirect("store:wallet")
    return render(request, "marketplace/wallet/topup_pay.html", {
        "nav": "wallet",
        "topup": topup,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
    })


def _topup_outcome_message(request: OrganizationRequest, topup: TopUp) -> None:
    if topup.status == TopUp.Status.SUCCEEDED:
        messages.success(request, f"Paid ${topup.amount_cents / 100:,.2f}: "
                                  f"{topup.tokens:,} tokens credited.")
    elif topup.status in (TopUp.Status.FAILED, TopUp.Status.CANCELED):
        messages.error(request, f"The payment did not go through: "
                                f"{topup.failure_message or topup.get_status_display()}.")
    else:
        messages.info(request, "The payment is still being processed; the tokens are "
                               "credited as soon as it clears.")


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
def statement_lines_csv(request: OrganizationRequest) -> HttpResponse:
    """The statement as a person reads it (one line per job, top-up, block...), as CSV."""
    filters = StatementFilterForm(request.GET or None)
    dates = filters.filters()
    lines = statement_lines(organization_id=request.organization.pk,
                            date_from=dates.get("date_from"), date_to=dates.get("date_to"))
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="statement-lines.csv"'
    writer = csv.writer(response)
    writer.writerow(["date_utc", "kind", "description", "gpu_class", "gpus", "duration_s",
                     "node", "amount_tokens", "amount_usd_approx", "balance_tokens"])
    for line in lines:
        writer.writerow([line.at.isoformat(), line.kind, line.description, line.gpu_class,
                         line.gpu_count or "", line.duration_s or "", line.node, line.amount,
                         usd_for_tokens(line.amount) or "", line.balance])
    return response


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


def _price_line() -> str:
    try:
        quote = topup_quote(currency="usd", amount_cents=100)
    except DomainError:
        return ""
    return f"USD 1 buys {quote.tokens:,} tokens today (volume discounts above USD 1,000)."


def _auto_topup_context(org_id: int) -> dict[str, Any]:
    config = auto_topup_get(organization_id=org_id)
    initial = ({"enabled": config.enabled, "threshold": config.threshold,
                "amount_usd": config.amount_cents // 100,
                "payment_method": config.payment_method} if config else {})
    return {"auto_topup": config, "auto_topup_form": AutoTopUpForm(initial=initial)}
