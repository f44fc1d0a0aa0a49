"""Who may call the bank's write endpoints: anonymous callers, the wrong role and other
organizations are refused, and a refusal changes nothing (no rows, no transfers)."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from banking.models import Transfer
from marketplace.models import Advance, Block, CapacityDeposit, LowBalanceAlert, SellBack
from marketplace.services.blocks import block_buy
from marketplace.services.deposits import deposit_create
from scheduler.models import Reservation
from tests.marketplace.bank.conftest import next_hour


def iso(t):
    return t.isoformat().replace("+00:00", "Z")


def snapshot():
    return (CapacityDeposit.objects.count(), Advance.objects.count(), Block.objects.count(),
            SellBack.objects.count(), Reservation.objects.count(), Transfer.objects.count(),
            LowBalanceAlert.objects.count())


@pytest.fixture
def world(provider, buyer, bank_node):
    start = next_hour()
    node = bank_node(gpus=8)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=4, start=start,
                   end=start + timedelta(hours=4))
    block = block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=2,
                      start=start, end=start + timedelta(hours=4), payment="wallet",
                      idempotency_key="w")
    return {"start": start, "node": node, "block": block}


def calls(world):
    start = world["start"]
    return {
        "deposit": ("post", "/api/v1/deposits/", {
            "node": world["node"].pk, "gpu_count": 4, "start": iso(start),
            "end": iso(start + timedelta(hours=1))}),
        "advance": ("post", "/api/v1/advances/", {"amount": 1}),
        "block": ("post", "/api/v1/blocks/", {
            "gpu_class": "H100-80GB", "gpu_count": 1, "start": iso(start),
            "end": iso(start + timedelta(hours=1)), "payment": "wallet"}),
        "sell_back": ("post", f"/api/v1/blocks/{world['block'].pk}/sell-back/", {
            "gpu_count": 2, "from": iso(start + timedelta(hours=2))}),
        "alert": ("put", "/api/v1/alerts/low-balance/", {"threshold": 10}),
    }


@pytest.mark.parametrize("name", ["deposit", "advance", "block", "sell_back", "alert"])
def test_anonymous_callers_are_refused_and_nothing_changes(world, name):
    method, url, body = calls(world)[name]
    before = snapshot()
    response = getattr(APIClient(), method)(url, body, format="json")
    assert response.status_code == 401
    assert "error" in response.json()
    assert snapshot() == before


@pytest.mark.parametrize(("caller", "name", "status"), [
    ("buyer_only", "deposit", 403),
    ("buyer_only", "advance", 403),
    ("provider_only", "block", 403),
    ("provider_only", "sell_back", 403),
    ("other_provider", "deposit", 404),   # not its node
    ("other_buyer", "sell_back", 404),    # not its block
])
def test_the_wrong_role_or_organization_is_refused_and_nothing_changes(
        world, make_org, api_client_for, caller, name, status):
    org = {
        "buyer_only": lambda: make_org(tokens=10**12),
        "provider_only": lambda: make_org(provider=True, buyer=False, tokens=10**12),
        "other_provider": lambda: make_org(provider=True, tokens=10**12),
        "other_buyer": lambda: make_org(tokens=10**12),
    }[caller]()
    client = api_client_for(org)
    method, url, body = calls(world)[name]
    before = snapshot()
    response = getattr(client, method)(url, body, format="json")
    assert response.status_code == status, response.content
    assert snapshot() == before


def test_lists_show_only_the_callers_own_rows(world, provider, buyer, make_org,
                                              api_client_for):
    stranger = api_client_for(make_org(provider=True, tokens=10))
    assert len(stranger.get("/api/v1/deposits/").json()["results"]) == 0
    assert len(stranger.get("/api/v1/blocks/").json()["results"]) == 0
    assert len(api_client_for(provider).get("/api/v1/deposits/").json()["results"]) == 1
    assert [b["id"] for b in api_client_for(buyer).get("/api/v1/blocks/").json()["results"]
            ] == [world["block"].pk]


def test_block_list_queries_do_not_grow_with_rows(world, buyer, api_client_for,
                                                  django_assert_max_num_queries):
    client = api_client_for(buyer)
    start = world["start"]
    for hour in range(1, 4):
        block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=1,
                  start=start + timedelta(hours=hour), end=start + timedelta(hours=hour + 1),
                  payment="wallet", idempotency_key=f"more-{hour}")
    with django_assert_max_num_queries(8):
        assert len(client.get("/api/v1/blocks/").json()["results"]) == 4


def test_deposit_list_queries_do_not_grow_with_rows(provider, bank_node, api_client_for,
                                                    django_assert_max_num_queries):
    start = next_hour()
    for _ in range(5):
        node = bank_node(gpus=2)
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=2, start=start,
                       end=start + timedelta(hours=1))
    client = api_client_for(provider)
    with django_assert_max_num_queries(8):
        assert len(client.get("/api/v1/deposits/").json()["results"]) == 5
