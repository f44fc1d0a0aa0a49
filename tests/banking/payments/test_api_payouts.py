"""/api/v1/payouts/ and /api/v1/payout-account/: behaviour and who may call; plus the
admin actions that approve and reject."""

import pytest
from rest_framework.test import APIClient

from banking.models import Hold, Payout, PayoutAccount
from banking.selectors import wallet_get

pytestmark = pytest.mark.django_db
M = 1_000_000


@pytest.fixture
def provider(make_org):
    return make_org(provider=True, buyer=False, earned=100 * M)


def _with_account(client):
    response = client.put("/api/v1/payout-account/", {"stripe_account_id": "acct_123"},
                          format="json")
    assert response.status_code == 200
    return client


def test_the_provider_sets_and_reads_its_payout_account(provider, api_client_for):
    client = api_client_for(provider)
    assert client.get("/api/v1/payout-account/").json()["stripe_account_id"] is None
    response = client.put("/api/v1/payout-account/",
                          {"stripe_account_id": "acct_123", "auto_payout_threshold": 5 * M},
                          format="json")
    assert response.status_code == 200
    body = client.get("/api/v1/payout-account/").json()
    assert (body["stripe_account_id"], body["auto_payout_threshold"]) == ("acct_123", 5 * M)
    assert (body["payout_min_tokens"], body["payout_cents_per_million"]) == (10 * M, "25")
    bad = client.put("/api/v1/payout-account/", {"stripe_account_id": "iban"}, format="json")
    assert bad.status_code == 400
    assert PayoutAccount.objects.get().stripe_account_id == "acct_123"


def test_a_payout_request_holds_tokens_and_is_listed(provider, api_client_for, fake_gateway):
    client = _with_account(api_client_for(provider))
    response = client.post("/api/v1/payouts/", {"tokens": 40 * M}, format="json",
                           HTTP_IDEMPOTENCY_KEY="p1")
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["tokens"], body["amount_cents"], body["destination"]) == (
        "pending_approval", 40 * M, 1000, "acct_123")
    again = client.post("/api/v1/payouts/", {"tokens": 40 * M}, format="json",
                        HTTP_IDEMPOTENCY_KEY="p1")
    assert again.json()["id"] == body["id"]
    assert wallet_get(organization_id=provider.pk).held == 40 * M
    listed = client.get("/api/v1/payouts/").json()
    assert [p["id"] for p in listed["results"]] == [body["id"]]


@pytest.mark.parametrize(
    ("tokens", "status", "code"),
    [(5 * M, 400, "payout_below_minimum"), (101 * M, 402, "not_payable"),
     (0, 400, "invalid")],
)
def test_bad_payouts_get_a_code_and_hold_nothing(provider, api_client_for, fake_gateway,
                                                  tokens, status, code):
    client = _with_account(api_client_for(provider))
    response = client.post("/api/v1/payouts/", {"tokens": tokens}, format="json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert Payout.objects.count() == 0
    assert Hold.objects.count() == 0
    assert wallet_get(organization_id=provider.pk).available == 100 * M


def test_a_payout_without_an_account_is_refused(provider, api_client_for):
    response = api_client_for(provider).post("/api/v1/payouts/", {"tokens": 20 * M},
                                             format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "payout_account_missing"
    assert Hold.objects.count() == 0


def test_a_buyer_only_organization_gets_403_and_nothing_changes(make_org, api_client_for):
    buyer = make_org(tokens=100 * M)
    client = api_client_for(buyer)
    calls = [
        client.post("/api/v1/payouts/", {"tokens": 20 * M}, format="json"),
        client.get("/api/v1/payouts/"),
        client.get("/api/v1/payout-account/"),
        client.put("/api/v1/payout-account/", {"stripe_account_id": "acct_1"}, format="json"),
    ]
    assert [r.status_code for r in calls] == [403] * 4
    assert {r.json()["error"]["code"] for r in calls} == {"permission_denied"}
    assert (Payout.objects.count(), Hold.objects.count(), PayoutAccount.objects.count()) == (
        0, 0, 0)
    assert wallet_get(organization_id=buyer.pk).available == 100 * M


def test_anonymous_callers_get_401(provider):
    client = APIClient()
    calls = [
        client.post("/api/v1/payouts/", {"tokens": 20 * M}, format="json"),
        client.get("/api/v1/payouts/"),
        client.put("/api/v1/payout-account/", {"stripe_account_id": "acct_1"}, format="json"),
    ]
    assert [r.status_code for r in calls] == [401] * 3
    assert Payout.objects.count() == 0


def test_each_provider_sees_only_its_own_payouts(provider, make_org, api_client_for,
                                                 fake_gateway):
    mine = _with_account(api_client_for(provider))
    mine.post("/api/v1/payouts/", {"tokens": 20 * M}, format="json")
    other = api_client_for(make_org(provider=True))
    assert other.get("/api/v1/payouts/").json()["results"] == []


def test_admin_approves_and_rejects_payouts(provider, make_org, api_client_for, admin_client,
                                            fake_gateway, eager_tasks,
                                            django_capture_on_commit_callbacks):
    client = _with_account(api_client_for(provider))
    first = client.post("/api/v1/payouts/", {"tokens": 20 * M}, format="json").json()["id"]
    second = client.post("/api/v1/payouts/", {"tokens": 30 * M}, format="json").json()["id"]
    url = "/admin/banking/payout/"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"action": "approve", "_selected_action": [first]})
    assert response.status_code == 302
    admin_client.post(url, {"action": "reject", "_selected_action": [second]})
    assert Payout.objects.get(pk=first).status == "paid"
    assert Payout.objects.get(pk=second).status == "rejected"
    summary = wallet_get(organization_id=provider.pk)
    assert (summary.available, summary.held) == (80 * M, 0)
    assert [p["status"] for p in client.get("/api/v1/payouts/").json()["results"]] == [
        "rejected", "paid"]


def test_the_admin_dashboard_counts_payouts_awaiting_approval(provider, api_client_for,
                                                              admin_client, fake_gateway):
    client = _with_account(api_client_for(provider))
    client.post("/api/v1/payouts/", {"tokens": 20 * M}, format="json")
    page = admin_client.get("/admin/")
    assert page.status_code == 200
    payments = dict(dict(page.context["dashboard_panels"])["Payments"])
    assert payments["Payouts awaiting approval"] == 1
    assert payments["Open disputes"] == 0
