"""Paying by card the way production does, in a real browser: the top-up page mounts a
Stripe Elements card field, the browser trades the card for a token with Stripe.js, and
the page confirms through the API. Stripe.js and Stripe are localstripe's stand-ins (its
script at /js.stripe.com/v3/ and its stateful server), so nothing leaves the machine."""

import re
from urllib.parse import urlsplit

import pytest
import stripe
from django.conf import settings

from banking.models import Organization, TopUp, Transfer
from banking.models.ledger import TransferKind
from tests.banking.payments.conftest import balance
from tests.e2e.conftest import UI
from tests.stripe_server import LOCALSTRIPE_SECRET_KEY, LocalStripe

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PASSWORD = "correct-horse-42"


@pytest.fixture
def card_entry(localstripe: LocalStripe, settings) -> LocalStripe:
    """The storefront configured as in production: a publishable key and Stripe.js."""
    settings.STRIPE_PUBLISHABLE_KEY = localstripe.publishable_key
    settings.STRIPE_JS_URL = localstripe.stripe_js_url
    return localstripe


def _start_topup(ui: UI, name: str, usd: int) -> Organization:
    ui.sign_up(name, f"owner@{name.lower().replace(' ', '')}.example", PASSWORD)
    assert ui.page.locator("#id_payment_method").count() == 0  # no card field of ours
    ui.page.fill("#id_amount_usd", str(usd))
    ui.page.click("[data-testid=pay]")
    ui.page.wait_for_selector("[data-testid=confirm]")
    assert f"USD {usd}.00" in ui.page.inner_text("[data-testid=confirm]")
    ui.page.click("[data-testid=confirm-button]")
    ui.page.wait_for_url(re.compile(r".*/wallet/topups/\d+/pay/$"))
    ui.page.wait_for_selector("[data-testid=card-element] input")
    ui.shot("card entry")
    _assert_only_stripe_js_is_external(ui)
    return Organization.objects.get(name=name)


def _assert_only_stripe_js_is_external(ui: UI) -> None:
    """The card page ran under a policy naming Stripe.js's configured origin (localstripe
    here) as its one external source, and the browser blocked nothing on it."""
    origin = urlsplit(settings.STRIPE_JS_URL)
    stripe_origin = f"{origin.scheme}://{origin.netloc}"
    policy = ui.page.context.request.get(ui.page.url).headers["content-security-policy"]
    directives = {part.split()[0]: part.split()[1:] for part in policy.split("; ")}
    assert directives["script-src"] == ["'self'", stripe_origin]
    external = {source for sources in directives.values() for source in sources
                if source.startswith(("http:", "https:"))}
    assert external == {stripe_origin}
    assert ui.csp_violations == []


def _type_card(ui: UI, number: str) -> None:
    """Into the card Element's fields (localstripe draws them as plain inputs)."""
    element = "[data-testid=card-element]"
    ui.page.fill(f"{element} input[placeholder=number]", "")
    ui.page.type(f"{element} input[placeholder=number]", number)
    ui.page.fill(f"{element} input[placeholder=exp_month]", "12")
    ui.page.fill(f"{element} input[placeholder=exp_year]", "34")
    ui.page.fill(f"{element} input[placeholder=cvc]", "123")
    ui.page.type(f"{element} input[placeholder=postal_code]", "75001")


def _stripe_payment(localstripe: LocalStripe, topup: TopUp):
    client = stripe.StripeClient(LOCALSTRIPE_SECRET_KEY, base_addresses={"api": localstripe.url})
    assert topup.payment_intent_id
    return client.v1.payment_intents.retrieve(topup.payment_intent_id)


def test_a_buyer_pays_by_card_in_stripe_elements(ui: UI, card_entry: LocalStripe) -> None:
    org = _start_topup(ui, "Elements Labs", 25)
    topup = TopUp.objects.get(organization=org)
    assert (topup.status, balance(org)) == ("pending", 0)

    _type_card(ui, "4242424242424242")
    ui.page.click("[data-testid=card-pay]")
    ui.page.wait_for_url(re.compile(r".*/wallet/$"))
    ui.shot("paid")

    topup.refresh_from_db()
    assert topup.status == "succeeded"
    assert balance(org) == topup.tokens
    assert ui.page.inner_text("[data-testid=available]").strip() == f"{topup.tokens:,}"
    assert f"{topup.tokens:,} tokens credited" in ui.page.inner_text("main")
    paid = _stripe_payment(card_entry, topup)
    assert (paid.status, paid.amount) == ("succeeded", 2500)
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 1


def test_3d_secure_is_asked_in_the_browser_before_the_tokens_arrive(
    ui: UI, card_entry: LocalStripe
) -> None:
    org = _start_topup(ui, "Secure Labs", 10)

    _type_card(ui, "4000002760003184")
    ui.page.click("[data-testid=card-pay]")
    ui.page.wait_for_selector("text=Complete authentication")
    ui.shot("3-D Secure asked")
    assert balance(org) == 0
    assert TopUp.objects.get(organization=org).payment_status == "requires_action"
    ui.page.click("text=Complete authentication")
    ui.page.wait_for_url(re.compile(r".*/wallet/$"))
    ui.shot("authenticated and paid")

    topup = TopUp.objects.get(organization=org)
    assert topup.status == "succeeded"
    assert balance(org) == topup.tokens


def test_a_declined_card_says_so_and_another_card_pays(
    ui: UI, card_entry: LocalStripe
) -> None:
    org = _start_topup(ui, "Unlucky Labs", 10)

    _type_card(ui, "4000000000000002")
    ui.page.click("[data-testid=card-pay]")
    ui.page.wait_for_selector("[data-testid=card-error]:not([hidden])")
    ui.shot("declined")
    assert "Your card was declined." in ui.page.inner_text("[data-testid=card-error]")
    assert ui.page.url.endswith("/pay/")
    assert TopUp.objects.get(organization=org).status == "failed"
    assert balance(org) == 0

    _type_card(ui, "4242424242424242")
    ui.page.click("[data-testid=card-pay]")
    ui.page.wait_for_url(re.compile(r".*/wallet/$"))
    ui.shot("second card paid")
    topup = TopUp.objects.get(organization=org)
    assert topup.status == "succeeded"
    assert balance(org) == topup.tokens
    assert Transfer.objects.filter(kind=TransferKind.TOPUP).count() == 1
