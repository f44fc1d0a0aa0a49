"""Selling back a financed block repays its loan's principal first; only the rest reaches
the wallet, and the rest of the schedule is re-computed exactly."""

import uuid
from datetime import timedelta

import pytest

from banking.amortization import annuity_schedule
from banking.models import Installment, Loan
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account, wallet_get
from banking.services.lending import credit_line_set
from marketplace.models import SellBack
from marketplace.services.blocks import block_buy, block_sell_back, sell_back_quote
from marketplace.services.deposits import deposit_create
from tests.marketplace.bank.conftest import next_hour
from tests.marketplace.storefront.conftest import client_for, make_member  # noqa: F401


@pytest.fixture
def financed(provider, bank_node, buyer):
    start = next_hour()
    node = bank_node(gpus=8)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                   end=start + timedelta(hours=4))
    credit_line_set(organization_id=buyer.pk, limit=10**11, apr_bps=1200, max_term_months=12)
    return block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=8,
                     start=start, end=start + timedelta(hours=4), payment="financed",
                     term_months=6, idempotency_key="fin")


def _owed(loan: Loan) -> int:
    return sum(loan.installments.filter(status__in=["due", "overdue"])
               .values_list("principal", flat=True))


def test_a_partial_sell_back_repays_principal_first_and_reschedules_the_rest_exactly(
        buyer, financed):
    loan = Loan.objects.get(pk=financed.loan_id)
    owed = _owed(loan)
    wallet = wallet_get(organization_id=buyer.pk).available
    due_dates = list(loan.installments.order_by("number").values_list("due_date", flat=True))
    quote = sell_back_quote(block=financed, gpu_count=4, start=financed.start)
    assert quote.credit == financed.price // 2 - financed.price // 2 * 2000 // 10_000
    assert (quote.to_loan, quote.to_wallet) == (quote.credit, 0)  # less than owed

    sold = block_sell_back(organization_id=buyer.pk, block_id=financed.pk, gpu_count=4,
                           start=financed.start, idempotency_key="sb")
    assert (sold.credited, sold.to_loan, sold.to_wallet) == (quote.credit, quote.credit, 0)
    loan.refresh_from_db()
    assert _owed(loan) == owed - sold.credited
    assert organization_account(buyer.pk, AccountPurpose.CREDIT).balance == -(owed - sold.credited)
    assert wallet_get(organization_id=buyer.pk).available == wallet
    expected = annuity_schedule(principal=owed - sold.credited, apr_bps=1200, term_months=6,
                                first_due=due_dates[0])
    rows = list(loan.installments.order_by("number").values_list("due_date", "principal",
                                                                  "interest", "status"))
    assert rows == [(d, r.principal, r.interest, "due") for d, r in zip(due_dates, expected,
                                                                        strict=True)]
    assert sum(r[1] for r in rows) == owed - sold.credited  # whole tokens, exact


def test_selling_back_the_whole_block_repays_what_is_owed_and_only_the_rest_is_liquid(
        buyer, financed):
    loan = Loan.objects.get(pk=financed.loan_id)
    owed = _owed(loan)
    wallet = wallet_get(organization_id=buyer.pk).available
    sold = block_sell_back(organization_id=buyer.pk, block_id=financed.pk, gpu_count=8,
                           start=financed.start, idempotency_key="all")
    assert sold.credited == financed.price - financed.price * 2000 // 10_000
    assert sold.to_loan == min(sold.credited, owed)
    assert wallet_get(organization_id=buyer.pk).available == wallet + sold.credited - sold.to_loan
    loan.refresh_from_db()
    if sold.to_loan == owed:
        assert loan.status == Loan.Status.PAID
        assert set(loan.installments.values_list("status", "interest_waived")) == {
            (Installment.Status.PAID, True)}
    assert organization_account(buyer.pk, AccountPurpose.CREDIT).balance == -(owed - sold.to_loan)
    # Walking away: the buyer paid the down payment and leaves with at most what the
    # credit exceeded the loan by, never 60 % of the price in liquid tokens.
    assert wallet_get(organization_id=buyer.pk).available - wallet < financed.price // 100


def test_the_storefront_shows_both_parts_before_confirming(buyer, financed, client_for):  # noqa: F811
    client = client_for(buyer)
    quote = sell_back_quote(block=financed, gpu_count=4, start=financed.start)
    body = {"gpu_count": 4, "start": financed.start.strftime("%Y-%m-%dT%H:%M"),
            "idempotency_key": str(uuid.uuid4())}
    page = client.post(f"/blocks/{financed.pk}/sell-back/", body).content.decode()
    assert f"{quote.credit:,} tokens?" in page
    assert f"{quote.to_loan:,} repay the block&#x27;s loan first and 0 go to your wallet." in page
    assert SellBack.objects.count() == 0  # asked first: nothing sold
    client.post(f"/blocks/{financed.pk}/sell-back/", {**body, "confirm": "1"})
    assert SellBack.objects.get().to_loan == quote.to_loan
