"""What a newcomer reads: dollars beside tokens, the payout's value before confirming,
blocks from the web, words instead of field names, auto top-up settings."""

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from banking.models import AutoTopUp, Membership
from banking.services.lending import credit_line_set
from marketplace.forms import words_for_fields
from marketplace.models import Block
from marketplace.services.blocks import block_buy
from marketplace.services.deposits import deposit_create
from scheduler.models import Job, Node
from scheduler.services.nodes import node_register
from tests.scheduler.conftest import (  # noqa: F401  the scheduler's autouse fixtures
    _auto_approve_and_eager_kicks,
    _no_broker,
)


def _next_hour(hours: int) -> datetime:
    return timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)


@pytest.fixture
def bank_capacity(make_org):
    provider = make_org(provider=True, buyer=False)
    node = node_register(provider_id=provider.pk, name="vault", gpu_class="H100-80GB",
                         gpu_count=8, region="eu-west", mode=Node.Mode.BANK).node
    Node.objects.filter(pk=node.pk).update(gpus_reported=8)  # its agent's inventory
    start = _next_hour(1)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                   end=start + timedelta(hours=48))
    return start


def test_the_catalog_leads_with_dollars_and_the_api_gives_them(db, client):
    page = client.get("/catalog/").content.decode()
    # 8,300,000 tokens at $0.30 per 1M tokens
    assert 'data-testid="usd-H100-80GB">\u2248 $2.49 <small>/ GPU-hour</small>' in page
    assert 'data-testid="price-explained"' in page
    h100 = next(c for c in client.get("/api/v1/gpu-classes/").json()
                if c["name"] == "H100-80GB")
    assert (h100["on_demand_rate"], h100["usd_per_gpu_hour"]) == (8_300_000, "2.49")


def test_the_home_page_links_the_catalog(client):
    assert 'href="/catalog/" role="button" data-testid="home-catalog"' in \
        client.get("/").content.decode()


def test_the_payout_form_says_the_minimum_and_what_is_received_before_confirming(
        make_org, client_for):
    provider = make_org(provider=True, buyer=False)
    client = client_for(provider)
    page = client.get("/provider/").content.decode()
    assert "At least 10,000,000 tokens (you receive USD 2.50)" in page
    below = client.post("/provider/", {"form": "payout", "tokens": "9999999",
                                       "idempotency_key": "2f1c1f3e-0000-4000-8000-000000000001"})
    assert "The smallest payout is 10,000,000 tokens (you receive USD 2.50)." in \
        below.content.decode()
    assert 'data-testid="confirm"' not in below.content.decode()
    confirm = client.post("/provider/", {"form": "payout", "tokens": "10000000",
                                         "idempotency_key": "2f1c1f3e-0000-4000-8000-000000000002"})
    assert "you receive USD 2.50" in confirm.content.decode()


def test_a_provider_only_organization_sees_only_its_sections(make_org, client_for):
    provider = make_org(provider=True, buyer=False)
    page = client_for(provider).get("/provider/").content.decode()
    assert 'href="/provider/"' in page
    assert 'href="/jobs/"' not in page and 'href="/blocks/"' not in page
    assert 'href="/loans/"' not in page


def test_a_quote_for_more_than_the_bank_has_is_refused_in_words(org, owner_client,
                                                                 bank_capacity):
    body = {"gpu_class": "H100-80GB", "gpu_count": "9", "hours": "4", "payment": "wallet",
            "start": bank_capacity.strftime("%Y-%m-%dT%H:%M"), "action": "quote",
            "idempotency_key": "2f1c1f3e-0000-4000-8000-000000000003"}
    page = owner_client.post("/blocks/", body).content.decode()
    assert 'data-testid="quote"' not in page
    assert "The bank has 8 H100-80GB GPUs free for the whole window" in page
    financed = owner_client.post("/blocks/", {**body, "gpu_count": "2", "payment": "financed"})
    assert "Choose over how many months to pay." in financed.content.decode()
    assert Block.objects.count() == 0


def test_a_financed_quote_shows_what_is_taken_now_and_the_whole_cost(make_org, client_for,
                                                                      bank_capacity):
    org = make_org(tokens=10**10)
    credit_line_set(organization_id=org.pk, limit=10**10, apr_bps=1250, max_term_months=12)
    body = {"gpu_class": "H100-80GB", "gpu_count": "2", "hours": "10", "payment": "financed",
            "term_months": "3", "start": bank_capacity.strftime("%Y-%m-%dT%H:%M"),
            "action": "quote", "idempotency_key": "2f1c1f3e-0000-4000-8000-000000000004"}
    response = client_for(org).post("/blocks/", body)
    terms = response.context["financed"]
    quote = response.context["quote"]
    assert terms.due_now == quote.down_payment == quote.price // 5
    assert terms.total_interest == sum(r.interest for r in quote.schedule)
    assert terms.total_cost == quote.price + terms.total_interest
    assert terms.apr_percent == "12.5"
    page = response.content.decode()
    assert f"Pay {terms.due_now:,} tokens now, finance {terms.financed:,}" in page
    assert page.count("<td data-label=\"Status\">Upcoming</td>") == 3


def test_the_job_form_offers_the_buyers_blocks_and_a_waiting_job_says_when(
        make_org, client_for, bank_capacity):
    org = make_org(tokens=10**10)
    block = block_buy(organization_id=org.pk, gpu_class="H100-80GB", gpu_count=2,
                      start=bank_capacity + timedelta(hours=2),
                      end=bank_capacity + timedelta(hours=6), payment="wallet",
                      idempotency_key="b1")
    client = client_for(org)
    page = client.get("/jobs/").content.decode()
    assert f'<option value="{block.pk}">Block #{block.pk}: 2 \u00d7 H100-80GB' in page
    response = client.post("/jobs/", {
        "gpu_class": "A100-80GB", "gpu_count": "2", "max_duration_s": "600",
        "simulate_seconds": "5", "block": str(block.pk),
        "idempotency_key": "2f1c1f3e-0000-4000-8000-000000000005"})
    assert response.status_code == 302
    job = Job.objects.get(organization=org)
    # the class follows the block
    assert (job.reservation_id, job.gpu_class.name, job.hold_amount) == (
        block.reservation_id, "H100-80GB", 0)
    detail = client.get(f"/jobs/{job.pk}/").content.decode()
    assert (f"Waits for its block's window: starts "
            f"{block.start:%Y-%m-%d %H:%M} UTC") in detail
    assert "locked" not in detail


def test_cancelling_a_job_asks_first(make_org, client_for, bank_capacity):
    org = make_org(tokens=10**10)
    client = client_for(org)
    client.post("/jobs/", {"gpu_class": "H100-80GB", "gpu_count": "1",
                           "max_duration_s": "600", "simulate_seconds": "5",
                           "idempotency_key": "2f1c1f3e-0000-4000-8000-000000000006"})
    job = Job.objects.get(organization=org)
    asked = client.post(f"/jobs/{job.pk}/cancel/")
    assert "Keep it running" in asked.content.decode()
    assert Job.objects.get(pk=job.pk).state == "queued"
    client.post(f"/jobs/{job.pk}/cancel/", {"confirm": "1"})
    assert Job.objects.get(pk=job.pk).state == "canceled"


def test_errors_name_things_in_words():
    assert words_for_fields("A financed block needs term_months.") == \
        "A financed block needs a term in months."
    assert words_for_fields("gpu_count must be from 1 to 8.") == \
        "The number of GPUs must be from 1 to 8."


def test_auto_top_up_is_set_by_an_owner_and_refused_to_a_member(org, owner_client,
                                                                client_for):
    body = {"enabled": "on", "threshold": "5000000", "amount_usd": "25",
            "payment_method": "pm_card_visa"}
    member = client_for(org, Membership.Role.DEVELOPER)
    member.post("/wallet/auto-topup/", body)
    assert AutoTopUp.objects.count() == 0
    owner_client.post("/wallet/auto-topup/", body)
    config = AutoTopUp.objects.get(organization=org)
    assert (config.threshold, config.amount_cents, config.payment_method, config.enabled) == (
        5_000_000, 2500, "pm_card_visa", True)
    page = owner_client.get("/wallet/").content.decode()
    assert "below 5,000,000 tokens (\u2248 $1.50), your card is charged $25.00" in page
    owner_client.post("/wallet/auto-topup/", {**body, "payment_method": "card"})
    assert AutoTopUp.objects.get(organization=org).payment_method == "pm_card_visa"


def test_a_providers_sign_up_lands_on_the_provider_portal(db, client):
    response = client.post("/signup/", {"organization_name": "Idle GPUs", "kind": "provider",
                                        "email": "op@idle.example",
                                        "password1": "correct-horse-42"})
    assert response.status_code == 302
    assert response["Location"] == "/provider/"
    assert client.get("/")["Location"] == "/provider/"


def test_a_sign_up_that_also_buys_lands_on_the_wallet_and_a_next_url_wins(db, client):
    both = client.post("/signup/", {"organization_name": "Spenders", "kind": "both",
                                    "email": "ada@spend.example",
                                    "password1": "correct-horse-42"})
    asked = Client().post("/signup/?next=/catalog/", {
        "organization_name": "Idle Racks", "kind": "provider", "email": "op@racks.example",
        "password1": "correct-horse-42"})

    assert both["Location"] == "/wallet/"
    assert asked["Location"] == "/catalog/"
