"""The marketplace's doors against a stranger's extreme values: blocks, their availability
and quotes, deposits, advances, sell-backs, the low-balance alert, and the storefront's
forms and query strings. Each is a 4xx with its code, and nothing changed."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from banking.models import Membership, Transfer
from banking.selectors import wallet_get
from banking.services.customers import membership_add
from marketplace.models import Advance, Block, CapacityDeposit, InventorySlot, LowBalanceAlert
from marketplace.services.deposits import deposit_create
from tests.marketplace.bank.conftest import next_hour

pytestmark = pytest.mark.django_db

HUGE = [2**31, 2**63, -1]
YEARS_1_TO_9999 = {"gpu_class": "H100-80GB", "start": "0001-01-01T00:00:00Z",
                   "end": "9999-12-31T00:00:00Z"}


def iso(t: Any) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _state(org_id: int) -> dict[str, Any]:
    return {"blocks": Block.objects.count(), "deposits": CapacityDeposit.objects.count(),
            "slots": list(InventorySlot.objects.order_by("pk")
                          .values_list("pk", "capacity", "booked")),
            "advances": Advance.objects.count(), "transfers": Transfer.objects.count(),
            "alerts": list(LowBalanceAlert.objects.values_list("organization_id", "threshold")),
            "wallet": wallet_get(organization_id=org_id)}


@pytest.fixture
def stocked(provider, bank_node):
    start = next_hour()
    node = bank_node(gpus=8)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                   end=start + timedelta(hours=4))
    return start, node


def test_availability_over_years_1_to_9999_is_refused_before_any_read(
        client, django_assert_max_num_queries):
    # Anonymous, as the fuzzer was: this door is open to all. The first request of a
    # process loads what every request needs; the second is the refusal's own time.
    client.get("/api/v1/blocks/availability/", YEARS_1_TO_9999)
    started = time.perf_counter()
    with django_assert_max_num_queries(0):
        response = client.get("/api/v1/blocks/availability/", YEARS_1_TO_9999)
    elapsed = time.perf_counter() - started
    print(f"availability over years 1-9999 refused in {elapsed * 1000:.1f} ms")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "window_too_long"
    assert elapsed < 0.1


def test_availability_too_far_ahead_and_hostile_queries_are_refused(client):
    start = next_hour(24 * 365)
    response = client.get("/api/v1/blocks/availability/", {
        "gpu_class": "H100-80GB", "start": iso(start), "end": iso(start + timedelta(hours=1))})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "window_too_far_ahead"
    base = {"gpu_class": "H100-80GB", "start": iso(next_hour()),
            "end": iso(next_hour(2))}
    for hostile in ({"gpu_class": "H100\x00"}, {"gpu_class": "x" * 10_000},
                    {"gpu_count": str(2**63)}, {"gpu_count": "-1"}):
        response = client.get("/api/v1/blocks/availability/", {**base, **hostile})
        assert response.status_code == 400, hostile
        assert response.json()["error"]["code"] in ("invalid", "out_of_bounds"), hostile


def test_a_block_over_ten_years_is_refused_without_booking_or_slots(
        buyer, stocked, api_client_for, django_assert_max_num_queries):
    start, _ = stocked
    before = _state(buyer.pk)
    body = {"gpu_class": "H100-80GB", "gpu_count": 1, "start": iso(start),
            "end": iso(start + timedelta(days=3650)), "payment": "wallet"}
    client = api_client_for(buyer)
    # Authentication, the key's scope and the idempotency lock; nothing per hour.
    with django_assert_max_num_queries(12):
        response = client.post("/api/v1/blocks/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "window_too_long"
    quote = client.post("/api/v1/blocks/quote/", body, format="json")
    assert quote.status_code == 400
    assert quote.json()["error"]["code"] == "window_too_long"
    assert _state(buyer.pk) == before


@pytest.mark.parametrize("field", ["gpu_count", "term_months"])
@pytest.mark.parametrize("value", HUGE)
def test_a_block_with_an_extreme_integer_is_refused(buyer, stocked, api_client_for,
                                                     field, value):
    start, _ = stocked
    before = _state(buyer.pk)
    body = {"gpu_class": "H100-80GB", "gpu_count": 1, "start": iso(start),
            "end": iso(start + timedelta(hours=1)), "payment": "financed",
            "term_months": 3, field: value}
    response = api_client_for(buyer).post("/api/v1/blocks/", body, format="json")
    assert response.status_code == 400, response.content
    # Past bigint the parser refuses it (out_of_bounds), within it the field (invalid).
    assert response.json()["error"]["code"] in ("invalid", "out_of_bounds")
    assert field in response.json()["error"]["fields"]
    assert _state(buyer.pk) == before


@pytest.mark.parametrize("gpu_class", ["H100\x00", "H" * 10_000])
def test_a_block_with_a_hostile_class_name_is_refused(buyer, stocked, api_client_for,
                                                      gpu_class):
    start, _ = stocked
    before = _state(buyer.pk)
    response = api_client_for(buyer).post("/api/v1/blocks/", {
        "gpu_class": gpu_class, "gpu_count": 1, "start": iso(start),
        "end": iso(start + timedelta(hours=1)), "payment": "wallet"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["gpu_class"]
    assert _state(buyer.pk) == before


def test_a_ten_year_deposit_is_refused_before_any_lock_or_row(
        provider, bank_node, api_client_for, django_assert_max_num_queries):
    node = bank_node(gpus=8)
    before = _state(provider.pk)
    start = next_hour()
    client = api_client_for(provider)
    started = time.perf_counter()
    with django_assert_max_num_queries(12):
        response = client.post("/api/v1/deposits/", {
            "node": node.pk, "gpu_count": 8, "start": iso(start),
            "end": iso(start + timedelta(days=3650))}, format="json")
    elapsed = time.perf_counter() - started
    print(f"a ten-year deposit refused in {elapsed * 1000:.1f} ms")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "deposit_too_long"
    assert _state(provider.pk) == before


@pytest.mark.parametrize(("field", "value"), [
    ("node", 2**63), ("node", -1), ("gpu_count", 2**31), ("gpu_count", 2**63),
    ("gpu_count", -1), ("start", "\x00")])
def test_a_deposit_with_an_extreme_value_is_refused(provider, bank_node, api_client_for,
                                                    field, value):
    node = bank_node(gpus=8)
    before = _state(provider.pk)
    start = next_hour()
    body = {"node": node.pk, "gpu_count": 1, "start": iso(start),
            "end": iso(start + timedelta(hours=1)), field: value}
    response = api_client_for(provider).post("/api/v1/deposits/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert _state(provider.pk) == before


@pytest.mark.parametrize("value", [2**63, -1, "1\x00"])
def test_an_advance_of_an_extreme_amount_is_refused(provider, api_client_for, value):
    before = _state(provider.pk)
    response = api_client_for(provider).post("/api/v1/advances/", {"amount": value},
                                             format="json")
    assert response.status_code == 400
    assert "amount" in response.json()["error"]["fields"]
    assert _state(provider.pk) == before


@pytest.mark.parametrize("value", [2**31, 2**63, -1])
def test_a_sell_back_of_extreme_gpus_is_refused(buyer, stocked, api_client_for, value):
    start, _ = stocked
    client = api_client_for(buyer)
    block = client.post("/api/v1/blocks/", {
        "gpu_class": "H100-80GB", "gpu_count": 1, "start": iso(start),
        "end": iso(start + timedelta(hours=2)), "payment": "wallet"}, format="json").json()
    before = _state(buyer.pk)
    response = client.post(f"/api/v1/blocks/{block['id']}/sell-back/",
                           {"gpu_count": value, "from": iso(start)}, format="json")
    assert response.status_code == 400
    assert "gpu_count" in response.json()["error"]["fields"]
    assert _state(buyer.pk) == before


@pytest.mark.parametrize("value", [2**63, 10**16, -1, "\x00", 1.5])
def test_the_low_balance_alert_refuses_an_extreme_threshold(buyer, api_client_for, value):
    before = _state(buyer.pk)
    response = api_client_for(buyer).put("/api/v1/alerts/low-balance/", {"threshold": value},
                                         format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid", "out_of_bounds")
    assert "threshold" in response.json()["error"]["fields"]
    assert _state(buyer.pk) == before


# The storefront: forms and query strings

def _signed_in(org: Any) -> Client:
    from django.contrib.auth.models import User

    user = User.objects.create_user(username=f"u{org.pk}@example.com",
                                    email=f"u{org.pk}@example.com", password="pw-Secret-123")
    membership_add(organization_id=org.pk, user=user, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("value", [str(2**63), str(10**16), "9" * 5000, "-1"])
def test_the_alert_form_refuses_an_extreme_threshold(buyer, value):
    before = _state(buyer.pk)
    response = _signed_in(buyer).post(reverse("store:low_balance_alert"), {"threshold": value})
    # The wallet page again, the form showing why (a redirect would mean it was taken).
    assert response.status_code == 200
    assert response.context["alert_form"].errors["threshold"]
    assert _state(buyer.pk) == before


def test_the_block_form_refuses_a_block_past_the_window_bounds(buyer, stocked):
    start, _ = stocked
    before = _state(buyer.pk)
    response = _signed_in(buyer).post(reverse("store:blocks"), {
        "gpu_class": "H100-80GB", "gpu_count": "1", "start": start.strftime("%Y-%m-%dT%H:%M"),
        "hours": str(24 * 366), "payment": "wallet", "idempotency_key":
        "6f1d7c3e-1b7e-4d0c-9b1f-3a2e5c7d9e01"})
    assert response.status_code == 200
    assert "at most 90 days" in response.content.decode()
    assert _state(buyer.pk) == before


@pytest.mark.parametrize(("url", "query"), [
    ("store:blocks", {"gpu_class": "H100\x00"}),
    ("store:jobs", {"block": "1\x00"}),
    ("store:job_estimate", {"gpu_class": "H100\x00", "gpu_count": str(2**63),
                            "max_duration_s": "9" * 5000}),
])
def test_a_page_with_a_hostile_query_shows_its_default(buyer, url, query):
    response = _signed_in(buyer).get(reverse(url), query)
    assert response.status_code == 200
