"""Compute blocks (quote, then buy: financed ones show their installment schedule before
anything is bought) and loans (schedule, prepay)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from banking.fiat_display import tokens_with_usd
from banking.selectors_lending import credit_line_get, loan_get, loan_list
from banking.services.lending import loan_prepay
from core.errors import DomainError
from marketplace.forms import BlockForm, SellBackForm, apply_domain_error
from marketplace.selectors import block_get, block_list
from marketplace.services.blocks import (
    BlockQuote,
    availability,
    block_buy,
    block_quote,
    block_sell_back,
    sell_back_quote,
)
from marketplace.views.base import (
    OrganizationRequest,
    buyer_required,
    confirm_page,
    confirmed,
    found_or_404,
    query_text,
)
from scheduler.selectors import gpu_class_list


def _classes() -> list[tuple[str, str]]:
    return [(c.name, c.name) for c in gpu_class_list()]


@dataclass(frozen=True)
class FinancedTerms:
    """What a financed quote tells a person before buying."""

    due_now: int
    financed: int
    total_interest: int
    total_cost: int
    apr_percent: str


def _financed_terms(organization_id: int, quote: BlockQuote) -> FinancedTerms | None:
    if not quote.schedule:
        return None
    try:
        apr_bps = credit_line_get(organization_id=organization_id).apr_bps
    except DomainError:
        apr_bps = 0
    interest = sum(row.interest for row in quote.schedule)
    return FinancedTerms(due_now=quote.down_payment, financed=quote.financed,
                         total_interest=interest, total_cost=quote.price + interest,
                         apr_percent=f"{apr_bps / 100:.2f}".rstrip("0").rstrip("."))


def _can_buy(quote: BlockQuote, start: datetime, end: datetime) -> int:
    """Bank GPUs of the class free in every hour of the window."""
    return availability(gpu_class=quote.gpu_class.name, start=start, end=end).min_free_gpus


@buyer_required
def blocks(request: OrganizationRequest) -> HttpResponse:
    org_id = request.organization.pk
    form = BlockForm(request.POST or None, gpu_classes=_classes(),
                     initial={"gpu_class": query_text(request, "gpu_class") or None})
    quote = None
    financed = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        start = d["start"]
        end = start + timedelta(hours=d["hours"])
        terms: dict[str, Any] = {"organization_id": org_id, "gpu_class": d["gpu_class"],
                                 "gpu_count": d["gpu_count"], "start": start, "end": end,
                                 "payment": d["payment"], "term_months": d["term_months"]}
        try:
            if request.POST.get("action") == "buy":
                block = block_buy(idempotency_key=form.posting_key, **terms)
                taken = block.down_payment if block.loan_id else block.price
                messages.success(
                    request, f"Block #{block.pk} bought: {block.gpu_count} \u00d7 "
                             f"{d['gpu_class']} for {d['hours']} h; {tokens_with_usd(taken)} "
                             "taken from your wallet. Choose it under “Run on” when you "
                             "submit a job.")
                return redirect(f"{reverse('store:blocks')}?gpu_class={d['gpu_class']}")
            quote = block_quote(**terms)
            free = _can_buy(quote, start, end)
            if free < quote.gpu_count:
                form.add_error("gpu_count", f"At most {free} free in every hour of this window.")
                form.add_error(None, f"The bank has {free} {quote.gpu_class.name} GPU"
                                     f"{'' if free == 1 else 's'} free for the whole window; "
                                     "see the calendar for free hours.")
                quote = None
            else:
                financed = _financed_terms(org_id, quote)
        except DomainError as exc:
            apply_domain_error(form, exc)
    now = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    calendar_class = str(query_text(request, "gpu_class")
                         or (form.data.get("gpu_class") if form.is_bound else None)
                         or "H100-80GB")
    try:
        calendar = availability(gpu_class=calendar_class, start=now,
                                end=now + timedelta(hours=24))
    except DomainError:
        calendar = None
    return render(request, "marketplace/bank/blocks.html", {
        "nav": "blocks", "form": form, "quote": quote, "financed": financed,
        "calendar": calendar, "calendar_classes": [name for name, _ in _classes()],
        "free_now": _free_bank_gpus(now), "free_days": FREE_DAYS,
        "blocks": block_list(organization_id=org_id)[:50], "sell_back_form": SellBackForm(),
    })


FREE_DAYS = 7


def _free_bank_gpus(start: datetime) -> list[dict[str, Any]]:
    """Per class, the bank GPUs free in the coming hour and the fewest free in any hour of
    the next week: what can be bought right away."""
    rows = []
    for cls in gpu_class_list():
        coming = availability(gpu_class=cls.name, start=start, end=start + timedelta(hours=1))
        fortnight = availability(gpu_class=cls.name, start=start,
                                 end=start + timedelta(days=FREE_DAYS))
        rows.append({"cls": cls, "next_hour": coming.min_free_gpus,
                     "fortnight": fortnight.min_free_gpus})
    return rows


@buyer_required
@require_POST
def block_sell_back_view(request: OrganizationRequest, block_id: int) -> HttpResponse:
    found_or_404(lambda: block_get(organization_id=request.organization.pk, block_id=block_id))
    form = SellBackForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the GPUs and the hour to sell back from.")
        return redirect("store:blocks")
    if not confirmed(request):
        block = block_get(organization_id=request.organization.pk, block_id=block_id)
        start = form.cleaned_data["start"]
        quote = sell_back_quote(block=block, gpu_count=form.cleaned_data["gpu_count"],
                                start=start)
        split = (f" {quote.to_loan:,} repay the block's loan first and {quote.to_wallet:,} "
                 "go to your wallet." if quote.to_loan else
                 f" All {quote.to_wallet:,} go to your wallet.")
        return confirm_page(
            request, title="Confirm the sell-back",
            text=f"Sell back {form.cleaned_data['gpu_count']} GPUs of block #{block.pk} from "
                 f"{start:%Y-%m-%d %H:%M} UTC for about {quote.credit:,} tokens?" + split,
            button="Sell back", cancel_url="/blocks/")
    try:
        sold = block_sell_back(organization_id=request.organization.pk, block_id=block_id,
                               gpu_count=form.cleaned_data["gpu_count"],
                               start=form.cleaned_data["start"],
                               idempotency_key=form.posting_key)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Sold back {sold.gpu_count} GPUs from "
                                  f"{sold.start:%Y-%m-%d %H:%M} UTC: {sold.credited:,} tokens "
                                  "credited" + (f", {sold.to_loan:,} of them to the loan."
                                                if sold.to_loan else "."))
    return redirect("store:blocks")


@buyer_required
def loans(request: OrganizationRequest) -> HttpResponse:
    org_id = request.organization.pk
    items = [loan_get(organization_id=org_id, loan_id=loan.pk)
             for loan in loan_list(organization_id=org_id)[:20]]
    try:
        credit_line_get(organization_id=org_id)
        has_line = True
    except DomainError:
        has_line = False
    return render(request, "marketplace/bank/loans.html", {
        "nav": "loans", "loans": items, "today": timezone.now().date(),
        "has_credit_line": has_line})


@buyer_required
@require_POST
def loan_prepay_view(request: OrganizationRequest, loan_id: int) -> HttpResponse:
    found_or_404(lambda: loan_get(organization_id=request.organization.pk, loan_id=loan_id))
    key = request.POST.get("idempotency_key", "")
    try:
        loan_prepay(organization_id=request.organization.pk, loan_id=loan_id, amount=None,
                    idempotency_key=f"web-prepay:{key}" if key else f"web-prepay:{loan_id}")
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Loan paid off.")
    return redirect("store:loans")
