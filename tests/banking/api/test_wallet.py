"""GET /api/v1/wallet/ and GET /api/v1/wallet/transfers/."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from banking.models import Entry
from banking.models.ledger import AccountPurpose
from banking.selectors import organization_account
from banking.services.customers import api_key_issue, api_key_revoke
from banking.services.holds import hold_place
from banking.services.ledger import grant_post


def test_the_wallet_shows_available_held_credit_and_owed(make_org, api_client_for):
    org = make_org(tokens=1_000)
    hold_place(organization_id=org.pk, amount=300, reference="job:1", idempotency_key="h")
    response = api_client_for(org).get("/api/v1/wallet/")
    assert response.status_code == 200
    assert response.json() == {
        "available": 700, "held": 300, "credit_limit": 0, "credit_used": 0, "debt": 0, "owed": 0,
    }


@pytest.mark.parametrize("header", [None, "Api-Key nope", "Api-Key sk_abc_def", "Bearer x"])
def test_the_wallet_refuses_callers_without_a_valid_key(db, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/wallet/")
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] in ("not_authenticated", "permission_denied")


def test_a_revoked_key_is_refused(make_org):
    org = make_org(tokens=10)
    issued = api_key_issue(organization_id=org.pk)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.secret}")
    assert client.get("/api/v1/wallet/").status_code == 200
    api_key_revoke(organization_id=org.pk, api_key_id=issued.api_key.pk)
    response = client.get("/api/v1/wallet/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_each_organization_sees_only_its_own_statement(make_org, api_client_for):
    mine, theirs = make_org(tokens=111), make_org(tokens=222)
    rows = api_client_for(mine).get("/api/v1/wallet/transfers/").json()["results"]
    assert [r["amount"] for r in rows] == [111]
    rows = api_client_for(theirs).get("/api/v1/wallet/transfers/").json()["results"]
    assert [r["amount"] for r in rows] == [222]


def test_the_statement_filters_by_kind_and_account(make_org, api_client_for):
    org = make_org(tokens=500)
    hold_place(organization_id=org.pk, amount=200, reference="job:9", idempotency_key="h9")
    client = api_client_for(org)
    grants = client.get("/api/v1/wallet/transfers/?kind=grant").json()
    assert [(r["kind"], r["amount"]) for r in grants["results"]] == [("grant", 500)]
    held = client.get("/api/v1/wallet/transfers/?account=held").json()
    assert [(r["kind"], r["account"], r["amount"]) for r in held["results"]] == [
        ("hold", "held", 200)
    ]
    bad = client.get("/api/v1/wallet/transfers/?kind=nonsense")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid"
    assert "kind" in bad.json()["error"]["fields"]


def test_the_statement_csv_has_every_entry_of_the_ledger(make_org, api_client_for):
    org = make_org(tokens=50)
    for i in range(3):
        grant_post(organization_id=org.pk, amount=10 + i, reason=f"bonus {i}")
    response = api_client_for(org).get("/api/v1/wallet/transfers/?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    wallet = organization_account(org.pk, AccountPurpose.WALLET)
    expected = list(Entry.objects.filter(account=wallet).order_by("-transfer_id"))
    assert [(int(r["entry_id"]), int(r["amount"])) for r in rows] == [
        (e.pk, e.amount) for e in expected
    ]
    assert [r["memo"] for r in rows] == ["bonus 2", "bonus 1", "bonus 0", "test funds"]


def test_the_statement_query_count_does_not_grow_with_rows(make_org, api_client_for):
    org = make_org(tokens=5)
    client = api_client_for(org)
    client.get("/api/v1/wallet/transfers/")  # warm: marks the key used

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/api/v1/wallet/transfers/").status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for i in range(20):
        grant_post(organization_id=org.pk, amount=1 + i, reason="r")
    assert count() == few


def test_pages_are_paginated(make_org, api_client_for):
    org = make_org(tokens=1)
    for i in range(4):
        grant_post(organization_id=org.pk, amount=1 + i, reason="r")
    client = api_client_for(org)
    body = client.get("/api/v1/wallet/transfers/?page_size=2").json()
    assert set(body) == {"next", "previous", "results"}
    assert len(body["results"]) == 2
    assert body["previous"] is None
    rest = client.get(body["next"]).json()
    last = client.get(rest["next"]).json()
    assert [len(rest["results"]), len(last["results"]), last["next"]] == [2, 1, None]
