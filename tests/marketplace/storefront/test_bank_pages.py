import uuid
from datetime import timedelta

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.test import Client
from django.utils import timezone

from banking.models import PayoutAccount, Transfer
from banking.services.lending import credit_line_set
from marketplace.models import Block
from tests.scheduler.conftest import (  # noqa: F401  the scheduler's autouse fixtures
    _auto_approve_and_eager_kicks,
    _no_broker,
)


def _stock(provider):
    from marketplace.services.deposits import deposit_create
    from scheduler.services.nodes import node_register

    node = node_register(provider_id=provider.pk, name="v", gpu_class="H100-80GB",
                         gpu_count=8, region="eu", mode="bank").node
    type(node).objects.filter(pk=node.pk).update(gpus_reported=8)  # its agent's inventory
    from tests.marketplace.bank.conftest import verified_history

    verified_history(node)  # the days of heartbeats an advance needs
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                   end=start + timedelta(hours=4))
    return start


def _body(start, **kw):
    body = {"gpu_class": "H100-80GB", "gpu_count": 2, "start": start.strftime("%Y-%m-%dT%H:%M"),
            "hours": 2, "payment": "wallet", "idempotency_key": str(uuid.uuid4())}
    body.update(kw)
    return body


def test_a_quote_buys_nothing_and_confirming_twice_buys_once(provider, make_org, client_for):
    start = _stock(provider)
    org = make_org(tokens=10**11)
    client = client_for(org)
    body = _body(start)
    quote = client.post("/blocks/", {**body, "action": "quote"})
    assert 'data-testid="quote-price"' in quote.content.decode()
    assert Block.objects.count() == 0
    client.post("/blocks/", {**body, "action": "buy"})
    client.post("/blocks/", {**body, "action": "buy"})
    assert Block.objects.filter(organization=org).count() == 1


def test_financing_without_a_credit_line_shows_the_error(provider, make_org, client_for):
    start = _stock(provider)
    page = client_for(make_org(tokens=10**11)).post(
        "/blocks/", {**_body(start, payment="financed", term_months=3), "action": "quote"})
    assert "credit line" in page.content.decode()
    assert Block.objects.count() == 0


def test_another_organizations_loan_cannot_be_prepaid(provider, make_org, client_for):
    start = _stock(provider)
    borrower = make_org(tokens=10**11)
    credit_line_set(organization_id=borrower.pk, limit=10**11, apr_bps=1200, max_term_months=12)
    client_for(borrower).post("/blocks/", {**_body(start, payment="financed", term_months=3),
                                           "action": "buy"})
    loan = Block.objects.get(organization=borrower).loan
    assert loan is not None
    other = client_for(make_org(tokens=10))
    assert other.post(f"/loans/{loan.pk}/prepay/").status_code == 404
    loan.refresh_from_db()
    assert loan.status == "active"
    page = client_for(borrower).get("/loans/")
    assert f"Loan #{loan.pk}" in page.content.decode()


def test_selling_back_the_second_half_of_a_block_from_the_page(provider, make_org, client_for):
    start = _stock(provider)
    org = make_org(tokens=10**11)
    client = client_for(org)
    client.post("/blocks/", {**_body(start, hours=2), "action": "buy"})
    block = Block.objects.get(organization=org)
    later = (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    key = str(uuid.uuid4())
    asked = client.post(f"/blocks/{block.pk}/sell-back/",
                        {"gpu_count": 2, "start": later, "idempotency_key": key})
    assert 'data-testid="confirm"' in asked.content.decode()
    assert Block.objects.get(pk=block.pk).sold_back == 0
    response = client.post(f"/blocks/{block.pk}/sell-back/",
                           {"gpu_count": 2, "start": later, "idempotency_key": key,
                            "confirm": "1"})
    assert response.status_code == 302
    block.refresh_from_db()
    assert block.sold_back > 0
    other = client_for(make_org(tokens=10))
    assert other.post(f"/blocks/{block.pk}/sell-back/",
                      {"gpu_count": 2, "start": later,
                       "idempotency_key": str(uuid.uuid4())}).status_code == 404


def test_a_provider_saves_a_payout_account_and_takes_an_advance(provider, make_member):
    _stock(provider)
    # A provider who is paid out: its owner signs in with a second factor, as money moves
    # need one once the organization has a payout account.
    owner = make_member(provider)
    TOTP.activate(owner, generate_totp_secret())
    client = Client()
    client.force_login(owner)
    client.post("/provider/", {"form": "payout-account", "stripe_account_id": "acct_123",
                               "auto_payout_threshold": 5_000_000})
    assert provider.payout_account.auto_payout_threshold == 5_000_000
    from marketplace.services.advances import advance_limit

    available = advance_limit(provider_id=provider.pk).available
    assert available > 0
    key = str(uuid.uuid4())
    client.post("/provider/", {"form": "advance", "amount": available, "idempotency_key": key})
    assert not provider.advances.exists()  # asked first
    client.post("/provider/", {"form": "advance", "amount": available, "idempotency_key": key,
                               "confirm": "1"})
    assert provider.advances.get().amount == available


def test_an_advance_without_a_second_factor_is_refused_once_payouts_are_set_up(
        provider, make_member):
    _stock(provider)
    PayoutAccount.objects.create(organization=provider, stripe_account_id="acct_123")
    client = Client()
    client.force_login(make_member(provider))
    from marketplace.services.advances import advance_limit

    available = advance_limit(provider_id=provider.pk).available
    refused = client.post("/provider/", {"form": "advance", "amount": available,
                                         "idempotency_key": str(uuid.uuid4()), "confirm": "1"})

    assert refused.status_code == 403
    assert 'data-code="mfa_required"' in refused.content.decode()
    assert not provider.advances.exists()
    assert Transfer.objects.filter(kind="advance").count() == 0
