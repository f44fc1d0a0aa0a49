"""The provider portal: nodes (the token shown once with the agent command), capacity
deposits and their yield, payouts."""

from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from banking.fiat_display import tokens_with_usd
from banking.models import Payout, PayoutAccount
from banking.payout_value import payout_value_text
from banking.selectors import earnings_per_day
from banking.services.payouts import payout_account_set, payout_request
from core.errors import DomainError
from marketplace.agent_wheel import AGENT_VERSION
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
    provider_required,
)
from scheduler.models import Node
from scheduler.selectors import gpu_class_list, node_list
from scheduler.services.nodes import node_register, node_update

TOKEN_SESSION_KEY = "storefront_new_node_token"


@dataclass(frozen=True)
class _Choices:
    """What the node and deposit forms offer: GPU classes, and the provider's bank nodes."""

    gpu_classes: list[tuple[str, str]]
    bank_nodes: list[tuple[str, str]]


# The portal's forms by the `form` field they post, each with its name in the template.
PostForm = Callable[[OrganizationRequest, _Choices], HttpResponse | forms.Form]
_CONTEXT_NAMES = {"node": "node_form", "deposit": "deposit_form", "advance": "advance_form",
                  "payout-account": "account_form", "payout": "payout_form"}


@provider_required
def provider(request: OrganizationRequest) -> HttpResponse:
    """The portal; a POST goes to the one handler of the form it names, and a form that
    does not pass comes back bound, with its errors, among the others."""
    org_id = request.organization.pk
    nodes = list(node_list(provider_id=org_id))
    choices = _Choices(
        gpu_classes=[(c.name, c.name) for c in gpu_class_list()],
        bank_nodes=[(str(n.pk), f"{n.name} ({n.gpu_count} x {n.gpu_class.name})")
                    for n in nodes if n.mode == Node.Mode.BANK],
    )
    posted: dict[str, forms.Form] = {}
    form_name = request.POST.get("form", "")
    handler = _POSTS.get(form_name) if request.method == "POST" else None
    if handler is not None:
        outcome = handler(request, choices)
        if isinstance(outcome, HttpResponse):
            return outcome
        posted[_CONTEXT_NAMES[form_name]] = outcome
    account = PayoutAccount.objects.filter(organization_id=org_id).first()
    unbound: dict[str, forms.Form] = {
        "node_form": NodeRegisterForm(gpu_classes=choices.gpu_classes),
        "deposit_form": DepositForm(nodes=choices.bank_nodes),
        "payout_form": PayoutForm(),
        "account_form": PayoutAccountForm(initial={
            "stripe_account_id": account.stripe_account_id if account else "",
            "auto_payout_threshold": account.auto_payout_threshold if account else None}),
        "advance_form": AdvanceForm(),
    }
    return render(request, "marketplace/provider/portal.html", {
        "nav": "provider", "nodes": nodes, **unbound, **posted,
        "deposits": deposit_list(provider_id=org_id)[:20],
        "advances": advance_list(provider_id=org_id)[:10],
        "advance_available": advance_limit(provider_id=org_id).available,
        "payouts": Payout.objects.filter(organization_id=org_id).order_by("-id")[:10],
        "earnings": [{"label": day.strftime("%m-%d"), "value": tokens}
                     for day, tokens in earnings_per_day(organization_id=org_id, days=30)],
    })


def node_register_post(
    request: OrganizationRequest, choices: _Choices
) -> HttpResponse | forms.Form:
    form = NodeRegisterForm(request.POST, gpu_classes=choices.gpu_classes)
    if form.is_valid():
        try:
            registered = node_register(provider_id=request.organization.pk, **form.cleaned_data)
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            request.session[TOKEN_SESSION_KEY] = {"id": registered.node.pk,
                                                  "token": registered.token}
            return redirect("store:node_created")
    return form


def deposit_create_post(
    request: OrganizationRequest, choices: _Choices
) -> HttpResponse | forms.Form:
    form = DepositForm(request.POST, nodes=choices.bank_nodes)
    if not form.is_valid():
        return form
    d = form.cleaned_data

    def deposit() -> str:
        deposit_create(provider_id=request.organization.pk, node_id=int(d["node"]),
                       gpu_count=d["gpu_count"], start=d["start"], end=d["end"],
                       idempotency_key=form.posting_key)
        return "Capacity deposited: it earns for every hour the node is online."

    return _submitted(request, form, deposit)


def payout_account_post(
    request: OrganizationRequest, choices: _Choices
) -> HttpResponse | forms.Form:
    form = PayoutAccountForm(request.POST)
    if not form.is_valid():
        return form

    def save() -> str:
        payout_account_set(organization_id=request.organization.pk, **form.cleaned_data)
        return "Payout account saved."

    return _submitted(request, form, save)


def advance_post(
    request: OrganizationRequest, choices: _Choices
) -> HttpResponse | forms.Form:
    form = AdvanceForm(request.POST)
    if not form.is_valid():
        return form
    amount = form.cleaned_data["amount"]

    def borrow() -> str:
        advance = advance_create(provider_id=request.organization.pk, amount=amount,
                                 idempotency_key=form.posting_key)
        return f"Advance of {advance.amount:,} tokens credited; yield repays it first."

    return _submitted(request, form, borrow, ask=(
        "Confirm the advance",
        f"Borrow {tokens_with_usd(amount)} now? Your deposits' yield repays it first.",
        f"Borrow {amount:,} tokens"))


def payout_post(
    request: OrganizationRequest, choices: _Choices
) -> HttpResponse | forms.Form:
    form = PayoutForm(request.POST)
    if not form.is_valid():
        return form
    tokens = form.cleaned_data["tokens"]

    def cash_out() -> str:
        payout = payout_request(organization_id=request.organization.pk, tokens=tokens,
                                idempotency_key=form.posting_key)
        return (f"Payout of {payout.tokens:,} tokens (USD {payout.amount_cents / 100:,.2f}) "
                f"requested: {payout.get_status_display().lower()}.")

    return _submitted(request, form, cash_out, ask=(
        "Confirm the payout",
        f"Cash out {tokens:,} tokens to your payout account: {payout_value_text(tokens)}. "
        "The tokens are held until the payout is made.",
        f"Cash out {tokens:,} tokens"))


def _submitted(
    request: OrganizationRequest, form: forms.Form, act: Callable[[], str],
    *, ask: tuple[str, str, str] | None = None,
) -> HttpResponse | forms.Form:
    """Run a valid form's service: its message and back to the portal, or its error shown
    on the form. With `ask` (title, question, button), money moves only once the member
    has confirmed (the same form posted again with `confirm=1`)."""
    if ask is not None and not confirmed(request):
        title, text, button = ask
        return confirm_page(request, title=title, text=text, button=button,
                            cancel_url="/provider/")
    try:
        done = act()
    except DomainError as exc:
        apply_domain_error(form, exc)
        return form
    messages.success(request, done)
    return redirect("store:provider")


_POSTS: dict[str, PostForm] = {
    "node": node_register_post,
    "deposit": deposit_create_post,
    "advance": advance_post,
    "payout-account": payout_account_post,
    "payout": payout_post,
}


TOKEN_FILE = "suanli-node-token"


def agent_install_command(*, server: str) -> str:
    """The agent is its own distribution, served by this server: the GPU machine needs
    Python and pip, nothing of this repository."""
    wheel = reverse("store:agent-wheel", kwargs={"version": AGENT_VERSION})
    return f"pip install {server}{wheel}"


def agent_command(*, server: str, token: str) -> str:
    return (f"(umask 077 && printf '%s' '{token}' > {TOKEN_FILE}) && "
            f"suanli-agent --server {server} --token-file {TOKEN_FILE}")


@provider_required
@never_cache
def node_created(request: OrganizationRequest) -> HttpResponse:
    shown = request.session.pop(TOKEN_SESSION_KEY, None)
    if not shown:
        messages.info(request, "A node's token is shown once only, when it is registered.")
        return redirect("store:provider")
    node = node_list(provider_id=request.organization.pk).filter(pk=shown["id"]).first()
    if node is None:
        raise Http404("Node not found.")
    # https when the request came over it; the token goes to a file only its owner reads,
    # never onto the agent's command line (readable by every process in /proc).
    server = request.build_absolute_uri("/").rstrip("/")
    command = agent_command(server=server, token=shown["token"])
    return render(request, "marketplace/provider/node_created.html",
                  {"nav": "provider", "node": node, "token": shown["token"],
                   "install": agent_install_command(server=server), "command": command})


@provider_required
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
