"""The provider portal: nodes (the token shown once with the agent command), capacity
deposits and their yield, payouts."""

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from banking.fiat_display import tokens_with_usd
from banking.models import Payout, PayoutAccount
from banking.payout_value import payout_value_text
from banking.selectors import earnings_per_day
from banking.services.payouts import payout_account_set, payout_request
from core.errors import DomainError
from marketplace.forms import (
    AdvanceForm,
    DepositForm,
    NodeRegisterForm,
    PayoutAccountForm,
    PayoutForm,
    apply_domain_error,
)
from marketplace.selectors import advance_list, deposit_list
from marketplace.services.advances import advance_create, advance_limit
from marketplace.services.deposits import deposit_create
from marketplace.views.base import (
    OrganizationRequest,
    confirm_page,
    confirmed,
    organization_required,
)
from scheduler.models import Node
from scheduler.selectors import gpu_class_list, node_list
from scheduler.services.nodes import node_register, node_update

TOKEN_SESSION_KEY = "storefront_new_node_token"


def _provider_only(request: OrganizationRequest) -> HttpResponse | None:
    if not request.organization.is_provider:
        return render(request, "marketplace/provider/not_provider.html", {"nav": "provider"},
                      status=403)
    return None


@organization_required
def provider(request: OrganizationRequest) -> HttpResponse:
    refused = _provider_only(request)
    if refused:
        return refused
    org_id = request.organization.pk
    classes = [(c.name, c.name) for c in gpu_class_list()]
    nodes = list(node_list(provider_id=org_id))
    bank_nodes = [(str(n.pk), f"{n.name} ({n.gpu_count} x {n.gpu_class.name})")
                  for n in nodes if n.mode == Node.Mode.BANK]
    node_form = NodeRegisterForm(gpu_classes=classes)
    deposit_form = DepositForm(nodes=bank_nodes)
    payout_form = PayoutForm()
    account = PayoutAccount.objects.filter(organization_id=org_id).first()
    account_form = PayoutAccountForm(initial={
        "stripe_account_id": account.stripe_account_id if account else "",
        "auto_payout_threshold": account.auto_payout_threshold if account else None})
    advance_form = AdvanceForm()
    form_name = request.POST.get("form")
    if request.method == "POST" and form_name == "node":
        node_form = NodeRegisterForm(request.POST, gpu_classes=classes)
        if node_form.is_valid():
            try:
                registered = node_register(provider_id=org_id, **node_form.cleaned_data)
            except DomainError as exc:
                apply_domain_error(node_form, exc)
            else:
                request.session[TOKEN_SESSION_KEY] = {"id": registered.node.pk,
                                                      "token": registered.token}
                return redirect("store:node_created")
    elif request.method == "POST" and form_name == "deposit":
        deposit_form = DepositForm(request.POST, nodes=bank_nodes)
        if deposit_form.is_valid():
            d = deposit_form.cleaned_data
            try:
                deposit_create(provider_id=org_id, node_id=int(d["node"]),
                               gpu_count=d["gpu_count"], start=d["start"], end=d["end"],
                               idempotency_key=deposit_form.posting_key)
            except DomainError as exc:
                apply_domain_error(deposit_form, exc)
            else:
                messages.success(request, "Capacity deposited: it earns for every hour the "
                                          "node is online.")
                return redirect("store:provider")
    elif request.method == "POST" and form_name == "payout-account":
        account_form = PayoutAccountForm(request.POST)
        if account_form.is_valid():
            try:
                payout_account_set(organization_id=org_id, **account_form.cleaned_data)
            except DomainError as exc:
                apply_domain_error(account_form, exc)
            else:
                messages.success(request, "Payout account saved.")
                return redirect("store:provider")
    elif request.method == "POST" and form_name == "advance":
        advance_form = AdvanceForm(request.POST)
        if advance_form.is_valid() and not confirmed(request):
            return confirm_page(
                request, title="Confirm the advance",
                text=f"Borrow {tokens_with_usd(advance_form.cleaned_data['amount'])} now? "
                     "Your deposits' yield repays it first.",
                button=f"Borrow {advance_form.cleaned_data['amount']:,} tokens",
                cancel_url="/provider/")
        if advance_form.is_valid():
            try:
                advance = advance_create(provider_id=org_id,
                                         amount=advance_form.cleaned_data["amount"],
                                         idempotency_key=advance_form.posting_key)
            except DomainError as exc:
                apply_domain_error(advance_form, exc)
            else:
                messages.success(request, f"Advance of {advance.amount:,} tokens credited; "
                                          "yield repays it first.")
                return redirect("store:provider")
    elif request.method == "POST" and form_name == "payout":
        payout_form = PayoutForm(request.POST)
        if payout_form.is_valid() and not confirmed(request):
            tokens = payout_form.cleaned_data["tokens"]
            return confirm_page(
                request, title="Confirm the payout",
                text=f"Cash out {tokens:,} tokens to your payout account: "
                     f"{payout_value_text(tokens)}. The tokens are held until the payout is "
                     "made.",
                button=f"Cash out {tokens:,} tokens", cancel_url="/provider/")
        if payout_form.is_valid():
            try:
                payout = payout_request(organization_id=org_id,
                                        tokens=payout_form.cleaned_data["tokens"],
                                        idempotency_key=payout_form.posting_key)
            except DomainError as exc:
                apply_domain_error(payout_form, exc)
            else:
                messages.success(request, f"Payout of {payout.tokens:,} tokens "
                                          f"(USD {payout.amount_cents / 100:,.2f}) requested: "
                                          f"{payout.get_status_display().lower()}.")
                return redirect("store:provider")
    return render(request, "marketplace/provider/portal.html", {
        "nav": "provider", "nodes": nodes, "node_form": node_form,
        "deposit_form": deposit_form, "deposits": deposit_list(provider_id=org_id)[:20],
        "advances": advance_list(provider_id=org_id)[:10],
        "advance_available": advance_limit(provider_id=org_id).available,
        "payout_form": payout_form, "account_form": account_form,
        "advance_form": advance_form,
        "payouts": Payout.objects.filter(organization_id=org_id).order_by("-id")[:10],
        "earnings": [{"label": day.strftime("%m-%d"), "value": tokens}
                     for day, tokens in earnings_per_day(organization_id=org_id, days=30)],
    })


@organization_required
@never_cache
def node_created(request: OrganizationRequest) -> HttpResponse:
    shown = request.session.pop(TOKEN_SESSION_KEY, None)
    if not shown:
        messages.info(request, "A node's token is shown once only, when it is registered.")
        return redirect("store:provider")
    node = node_list(provider_id=request.organization.pk).filter(pk=shown["id"]).first()
    if node is None:
        raise Http404("Node not found.")
    server = request.build_absolute_uri("/").rstrip("/")
    command = f"python -m scheduler.agent --server {server} --token {shown['token']}"
    return render(request, "marketplace/provider/node_created.html",
                  {"nav": "provider", "node": node, "token": shown["token"],
                   "command": command})


@organization_required
@require_POST
def node_drain(request: OrganizationRequest, node_id: int) -> HttpResponse:
    try:
        node_update(provider_id=request.organization.pk, node_id=node_id,
                    drain=request.POST.get("drain") != "0")
    except DomainError as exc:
        if exc.status == 404:
            raise Http404(exc.message) from exc
        messages.error(request, exc.message)
    return redirect("store:provider")
