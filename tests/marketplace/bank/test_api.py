"""The bank products' endpoints: who may call them, and nothing changes on a denial."""

from datetime import timedelta

import pytest

from banking.models import Transfer
from banking.services.lending import credit_line_set
from marketplace.models import Advance, Block, CapacityDeposit, InventorySlot
from marketplace.services.deposits import deposit_create, yield_accrue
from scheduler.models import Reservation
from tests.marketplace.bank.conftest import beat_every_minute, next_hour, verified_history


def iso(t):
    return t.isoformat().replace("+00:00", "Z")


@pytest.fixture
def stocked(provider, bank_node):
    start = next_hour()
    node = bank_node(gpus=8)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                   end=start + timedelta(hours=4))
    return start, node


def test_a_provider_deposits_and_lists_expected_earned_and_missed(provider, bank_node,
                                                                 api_client_for):
    node = bank_node(gpus=2)
    start = next_hour(2)
    client = api_client_for(provider)
    response = client.post("/api/v1/deposits/", {"node": node.pk, "gpu_count": 2,
                           "start": iso(start), "end": iso(start + timedelta(hours=1))},
                           format="json", HTTP_IDEMPOTENCY_KEY="d1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["expected"], body["earned"], body["missed"]) == (2 * body["rate_per_gpu_hour"],
                                                                  0, 0)
    listed = client.get("/api/v1/deposits/").json()
    assert [d["id"] for d in listed["results"]] == [body["id"]]


def test_buyers_cannot_deposit_and_other_providers_cannot_use_my_node(
        provider, buyer, make_org, bank_node, api_client_for):
    node = bank_node()
    start = next_hour()
    body = {"node": node.pk, "gpu_count": 1, "start": iso(start),
            "end": iso(start + timedelta(hours=1))}
    assert api_client_for(buyer).post("/api/v1/deposits/", body,
                                      format="json").status_code == 403
    other = api_client_for(make_org(provider=True))
    assert other.post("/api/v1/deposits/", body, format="json").status_code == 404
    assert CapacityDeposit.objects.count() == 0


def test_blocks_availability_quote_buy_list_and_sell_back(buyer, stocked, api_client_for):
    start, _ = stocked
    client = api_client_for(buyer)
    avail = client.get("/api/v1/blocks/availability/", {
        "gpu_class": "H100-80GB", "start": iso(start), "end": iso(start + timedelta(hours=2)),
        "gpu_count": 2}).json()
    assert [s["free_gpus"] for s in avail["slots"]] == [8, 8]
    body = {"gpu_class": "H100-80GB", "gpu_count": 2, "start": iso(start),
            "end": iso(start + timedelta(hours=2)), "payment": "wallet"}
    quote = client.post("/api/v1/blocks/quote/", body, format="json").json()
    assert quote["price"] == avail["quote"]["price"]
    bought = client.post("/api/v1/blocks/", body, format="json", HTTP_IDEMPOTENCY_KEY="b1")
    assert bought.status_code == 201, bought.content
    again = client.post("/api/v1/blocks/", body, format="json", HTTP_IDEMPOTENCY_KEY="b1")
    assert again.json()["id"] == bought.json()["id"]
    assert Block.objects.count() == 1
    block_id = bought.json()["id"]
    sold = client.post(f"/api/v1/blocks/{block_id}/sell-back/", {
        "gpu_count": 2, "from": iso(start + timedelta(hours=1))}, format="json")
    assert sold.status_code == 201, sold.content
    assert client.get("/api/v1/blocks/").json()["results"][0]["end"].startswith(
        iso(start + timedelta(hours=1))[:16])


def test_another_organizations_block_cannot_be_sold_back(buyer, make_org, stocked,
                                                        api_client_for):
    start, _ = stocked
    body = {"gpu_class": "H100-80GB", "gpu_count": 2, "start": iso(start),
            "end": iso(start + timedelta(hours=2)), "payment": "wallet"}
    block_id = api_client_for(buyer).post("/api/v1/blocks/", body, format="json").json()["id"]
    other = api_client_for(make_org(tokens=10**12))
    response = other.post(f"/api/v1/blocks/{block_id}/sell-back/", {
        "gpu_count": 2, "start": iso(start + timedelta(hours=1))}, format="json")
    assert response.status_code == 404
    assert len(other.get("/api/v1/blocks/").json()["results"]) == 0
    assert Block.objects.get(pk=block_id).sold_back == 0


PAST = "2020-01-01T00:00:00Z"


@pytest.mark.parametrize(("overrides", "code", "status"), [
    ({"gpu_count": 99}, "insufficient_inventory", 409),
    ({"payment": "financed", "term_months": 3}, "no_credit_line", None),
    ({"gpu_class": "nope"}, "unknown_gpu_class", 400),
    ({"start": PAST}, "invalid_window", 400),
    ({"end": "reversed"}, "invalid_window", 400),
    ({"end": "half-hour"}, "invalid_window", 400),
    ({"payment": "financed", "term_months": 99, "credit_line": True},
     "term_exceeds_credit_line", None),
])
def test_bad_block_purchases_get_codes_and_reserve_nothing(buyer, stocked, api_client_for,
                                                          overrides, code, status):
    start, _ = stocked
    if overrides.pop("credit_line", False):
        credit_line_set(organization_id=buyer.pk, limit=10**11, apr_bps=1200,
                        max_term_months=12)
    if overrides.get("end") == "reversed":
        overrides["end"] = iso(start - timedelta(hours=1))
    if overrides.get("end") == "half-hour":
        overrides["end"] = iso(start + timedelta(minutes=90))
    body = {"gpu_class": "H100-80GB", "gpu_count": 2, "start": iso(start),
            "end": iso(start + timedelta(hours=2)), "payment": "wallet", **overrides}
    transfers = Transfer.objects.count()
    response = api_client_for(buyer).post("/api/v1/blocks/", body, format="json")
    assert response.json()["error"]["code"] == code
    if status is not None:
        assert response.status_code == status
    assert Block.objects.count() == 0
    assert Reservation.objects.count() == 0
    assert Transfer.objects.count() == transfers
    assert not InventorySlot.objects.filter(booked__gt=0).exists()


def test_advances_api_enforces_the_share(provider, stocked, api_client_for):
    verified_history(stocked[1])
    client = api_client_for(provider)
    available = client.get("/api/v1/advances/").json()["available"]
    assert available > 0
    too_much = client.post("/api/v1/advances/", {"amount": available + 1}, format="json")
    assert too_much.status_code == 402
    assert too_much.json()["error"]["code"] == "advance_limit_exceeded"
    assert Advance.objects.count() == 0
    ok = client.post("/api/v1/advances/", {"amount": available}, format="json")
    assert ok.status_code == 201


def test_the_low_balance_alert_endpoint(buyer, api_client_for):
    client = api_client_for(buyer)
    assert client.get("/api/v1/alerts/low-balance/").json() == {"threshold": None}
    assert client.put("/api/v1/alerts/low-balance/", {"threshold": 5000},
                      format="json").json() == {"threshold": 5000}
    assert client.put("/api/v1/alerts/low-balance/", {"threshold": -1},
                      format="json").status_code == 400


def test_a_financed_quote_shows_the_schedule_and_writes_nothing(buyer, stocked,
                                                                api_client_for):
    start, _ = stocked
    credit_line_set(organization_id=buyer.pk, limit=10**11, apr_bps=1200, max_term_months=12)
    transfers = Transfer.objects.count()
    response = api_client_for(buyer).post("/api/v1/blocks/quote/", {
        "gpu_class": "H100-80GB", "gpu_count": 2, "start": iso(start),
        "end": iso(start + timedelta(hours=2)), "payment": "financed", "term_months": 6},
        format="json")
    assert response.status_code == 200, response.content
    quote = response.json()
    assert quote["down_payment"] == quote["price"] * 2000 // 10_000
    assert quote["financed"] == quote["price"] - quote["down_payment"]
    assert [r["number"] for r in quote["schedule"]] == [1, 2, 3, 4, 5, 6]
    assert sum(r["principal"] for r in quote["schedule"]) == quote["financed"]
    assert (Transfer.objects.count(), Block.objects.count()) == (transfers, 0)


def test_the_deposit_list_shows_earned_and_missed_after_accrual(provider, bank_node,
                                                                api_client_for, settings):
    settings.BANK_DEFAULT_MISSED_SHARE = 0.5
    node = bank_node(gpus=2)
    start = next_hour()
    deposit = deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2,
                             start=start, end=start + timedelta(hours=2))
    beat_every_minute(node, start, start + timedelta(hours=1))
    yield_accrue(now=start + timedelta(hours=2))
    row = api_client_for(provider).get("/api/v1/deposits/").json()["results"][0]
    half = deposit.total_yield // 2
    assert (row["expected"], row["earned"], row["missed"], row["status"]) == (
        deposit.total_yield, half, half, "completed")
    assert (row["intervals"], row["intervals_accrued"], row["missed_intervals"]) == (8, 8, 4)
