"""Keyset (cursor) pages: a walk along `next` sees every row that existed when it began
exactly once, in order, whatever is inserted meanwhile; no page counts the set."""

import threading

import pytest
import yaml
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from banking.models import Entry
from banking.services.ledger import grant_post


def _walk(client, url: str) -> list[int]:
    seen: list[int] = []
    while url:
        body = client.get(url).json()
        assert set(body) == {"next", "previous", "results"}
        seen += [row["entry_id"] for row in body["results"]]
        url = body["next"]
    return seen


def _statement_ids(org) -> list[int]:
    return list(Entry.objects.filter(account__organization_id=org.pk)
                .order_by("-transfer_id", "-id").values_list("id", flat=True))


def test_a_walk_sees_every_row_once_while_rows_are_inserted_between_pages(
        make_org, api_client_for):
    org = make_org(tokens=1)
    for i in range(20):
        grant_post(organization_id=org.pk, amount=1 + i, reason="before")
    before = _statement_ids(org)
    assert len(before) == 21
    client = api_client_for(org)
    seen: list[int] = []
    url = "/api/v1/wallet/transfers/?page_size=4"
    while url:
        body = client.get(url).json()
        seen += [row["entry_id"] for row in body["results"]]
        url = body["next"]
        for _ in range(3):  # new rows land on top, never on the pages still to come
            grant_post(organization_id=org.pk, amount=7, reason="meanwhile")
    assert seen == before
    assert len(_statement_ids(org)) == 21 + 3 * 6


def test_a_walk_backwards_returns_the_pages_it_came_from(make_org, api_client_for):
    org = make_org(tokens=1)
    for i in range(9):
        grant_post(organization_id=org.pk, amount=1 + i, reason="r")
    client = api_client_for(org)
    first = client.get("/api/v1/wallet/transfers/?page_size=4").json()
    second = client.get(first["next"]).json()
    grant_post(organization_id=org.pk, amount=5, reason="meanwhile")
    back = client.get(second["previous"]).json()
    assert [r["entry_id"] for r in back["results"]] == [r["entry_id"] for r in first["results"]]


def test_a_page_counts_nothing(make_org, api_client_for):
    org = make_org(tokens=1)
    for i in range(5):
        grant_post(organization_id=org.pk, amount=1 + i, reason="r")
    client = api_client_for(org)
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/api/v1/wallet/transfers/?page_size=2").json()
    assert len(body["results"]) == 2
    assert [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()] == []


def test_a_forged_cursor_is_refused_with_the_error_shape(make_org, api_client_for):
    org = make_org(tokens=1)
    response = api_client_for(org).get("/api/v1/wallet/transfers/?cursor=cD1ub3QtYW4taWQ%3D")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/wallet/transfers/", "/api/v1/jobs/",
                                  "/api/v1/topups/", "/api/v1/payouts/", "/api/v1/loans/",
                                  "/api/v1/nodes/", "/api/v1/deposits/", "/api/v1/blocks/"])
def test_the_schema_documents_cursor_pages(client, db, path):
    schema = yaml.safe_load(client.get("/api/v1/schema/").content)
    operation = schema["paths"][path]["get"]
    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} >= {
        "cursor", "page_size"}
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(page["properties"]) == {"next", "previous", "results"}


@pytest.mark.serial
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="real concurrent commits")
def test_a_walk_under_concurrent_commits_sees_each_row_once_and_skips_none(
        make_org, api_client_for):
    org = make_org(tokens=1)
    for i in range(40):
        grant_post(organization_id=org.pk, amount=1 + i, reason="before")
    before = _statement_ids(org)
    stop = threading.Event()
    posted = {"n": 0}

    def keep_posting() -> None:
        try:
            while not stop.is_set():
                grant_post(organization_id=org.pk, amount=3, reason="meanwhile")
                posted["n"] += 1
        finally:
            connections.close_all()

    writer = threading.Thread(target=keep_posting)
    writer.start()
    try:
        seen = _walk(api_client_for(org), "/api/v1/wallet/transfers/?page_size=5")
    finally:
        stop.set()
        writer.join()
    assert posted["n"] >= 1
    # Newest first, none twice, none of those there at the start skipped; rows committed
    # before the first page was read may lead it, none slips in further down.
    assert seen == sorted(set(seen), reverse=True)
    assert seen[len(seen) - len(before):] == before
