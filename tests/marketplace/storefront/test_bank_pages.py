import uuid
from datetime import timedelta

from django.utils import timezone

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
