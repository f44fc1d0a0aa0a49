"""The statement's pages are read one account at a time and merged (banking.selectors
StatementQuerySet): the merge must be exactly the statement's own order, page after page,
and a page must cost a page of each account, not the organization's whole history."""

from typing import Any

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from banking.models import Entry
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account, statement_list
from banking.services.holds import hold_capture, hold_place, hold_release
from banking.services.ledger import (
    grant_post,
    system_account,
    transfer_spec,
    transfers_post_batch,
)
from marketplace.uncounted_pages import uncounted_page

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans")


def _interleaved_history(org: Any, rounds: int) -> None:
    """Grants on the wallet; holds on the wallet and the held account in one transfer (two
    entries sharing its id, so a page can end between them); partial captures and
    releases on the held account alone or on both."""
    revenue = system_account(AccountPurpose.PLATFORM_REVENUE)
    for i in range(rounds):
        grant_post(organization_id=org.pk, amount=50 + i, reason=f"round {i}")
        hold = hold_place(organization_id=org.pk, amount=20, reference=f"job-{org.pk}-{i}",
                          idempotency_key=f"hold-{org.pk}-{i}")
        hold_capture(hold_id=hold.pk, legs=[(revenue.pk, 5)],
                     idempotency_key=f"capture-{org.pk}-{i}")
        if i % 2:
            hold_release(hold_id=hold.pk, idempotency_key=f"release-{org.pk}-{i}")


def _old_order(org: Any, **filters: Any) -> list[int]:
    """The statement as one query over the organization's entries, as it was read."""
    qs = Entry.objects.filter(account__organization_id=org.pk).order_by("-transfer_id", "-id")
    if filters.get("purposes"):
        qs = qs.filter(account__purpose__in=filters["purposes"])
    if filters.get("kinds"):
        qs = qs.filter(transfer__kind__in=filters["kinds"])
    return list(qs.values_list("id", flat=True))


def _walk(client: Any, url: str) -> tuple[list[int], list[str]]:
    seen, pages = [], []
    while url:
        pages.append(url)
        body = client.get(url).json()
        seen += [row["entry_id"] for row in body["results"]]
        url = body["next"]
    return seen, pages


@pytest.fixture
def two_busy_orgs(make_org: Any) -> tuple[Any, Any]:
    org, other = make_org(tokens=1000), make_org(tokens=1000)
    _interleaved_history(other, 4)
    _interleaved_history(org, 8)
    _interleaved_history(other, 4)
    return org, other


@pytest.mark.parametrize("page_size", [1, 2, 3, 5, 8])
def test_pages_across_accounts_are_the_statement_in_order_forwards_and_back(
        two_busy_orgs, api_client_for, page_size):
    org, _other = two_busy_orgs
    expected = _old_order(org)
    accounts = set(Entry.objects.filter(id__in=expected).values_list("account_id", flat=True))
    assert len(accounts) == 2 and len(expected) > 40
    client = api_client_for(org)
    seen, pages = _walk(client, f"/api/v1/wallet/transfers/?page_size={page_size}")
    assert seen == expected
    # Back along `previous` from the last page: each page as it was on the way forward.
    body = client.get(pages[-1]).json()
    back: list[int] = [row["entry_id"] for row in body["results"]]
    while body["previous"]:
        body = client.get(body["previous"]).json()
        back = [row["entry_id"] for row in body["results"]] + back
    assert back == expected


@pytest.mark.parametrize("query,filters", [
    ("kind=hold,capture", {"kinds": [TransferKind.HOLD, TransferKind.CAPTURE]}),
    ("account=held", {"purposes": [AccountPurpose.HELD]}),
    ("account=wallet,held&kind=release", {"purposes": [AccountPurpose.WALLET,
                                                        AccountPurpose.HELD],
                                          "kinds": [TransferKind.RELEASE]}),
])
def test_filtered_pages_are_the_filtered_statement_in_order(
        two_busy_orgs, api_client_for, query, filters):
    org, _other = two_busy_orgs
    expected = _old_order(org, **filters)
    assert len(expected) > 3
    seen, _pages = _walk(api_client_for(org), f"/api/v1/wallet/transfers/?page_size=3&{query}")
    assert seen == expected


def test_storefront_pages_by_number_are_the_statement_in_order(two_busy_orgs):
    org, _other = two_busy_orgs
    expected = _old_order(org)
    pages, number = [], 1
    while True:
        page = uncounted_page(statement_list(organization_id=org.pk), 7, str(number))
        pages += [entry.id for entry in page.object_list]
        assert all(entry.account.organization_id == org.pk for entry in page.object_list)
        if not page.has_next:
            break
        number += 1
    assert pages == expected


def test_the_csv_export_is_every_row_in_order(two_busy_orgs, api_client_for):
    org, _other = two_busy_orgs
    body = b"".join(api_client_for(org).get("/api/v1/wallet/transfers/?format=csv")
                    .streaming_content).decode()
    ids = [int(line.split(",")[0]) for line in body.splitlines()[1:]]
    assert ids == _old_order(org)


def _entry_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan] if plan.get("Relation Name") == Entry._meta.db_table else []
    for child in plan.get("Plans", []):
        found += _entry_scans(child)
    return found


def _rows_read(scan: dict[str, Any]) -> int:
    """Rows a scan node took from the entries, kept or filtered out, over all its loops."""
    per_loop = (scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0)
                + scan.get("Rows Removed by Index Recheck", 0))
    return int(per_loop * scan["Actual Loops"])


def _grants_in_one_batch(org: Any, count: int) -> None:
    wallet = organization_account(org.pk, AccountPurpose.WALLET)
    promotions = system_account(AccountPurpose.PROMOTIONS)
    transfers_post_batch([
        transfer_spec(kind=TransferKind.GRANT, idempotency_key=f"bulk-{org.pk}-{i}",
                      legs=[(promotions.pk, -(1 + i % 9)), (wallet.pk, 1 + i % 9)])
        for i in range(count)])


def test_a_page_reads_a_page_of_each_account_not_the_organizations_history(
        make_org, api_client_for):
    # A ledger large enough that a lookup by id is an index probe, not a read of the
    # table. The other organization's entries are older: a walk of the whole ledger by
    # transfer would meet them only after the organization's, so the bound below holds
    # for any per-account plan and fails for a read of the organization's whole set.
    other = make_org(tokens=1)
    _grants_in_one_batch(other, 4000)
    org = make_org(tokens=1000)
    _grants_in_one_batch(org, 200)
    _interleaved_history(org, 3)
    with connection.cursor() as cur:
        cur.execute(f'ANALYZE "{Entry._meta.db_table}"')
    per_account = dict(Entry.objects.filter(account__organization_id=org.pk)
                       .values_list("account_id").annotate(n=Count("id")))
    page_size = 5
    client = api_client_for(org)
    first = client.get(f"/api/v1/wallet/transfers/?page_size={page_size}").json()
    for url in (f"/api/v1/wallet/transfers/?page_size={page_size}", first["next"]):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        scans = []
        with connection.cursor() as cur:
            for query in queries.captured_queries:
                if Entry._meta.db_table not in query["sql"]:
                    continue
                cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query["sql"])
                scans += _entry_scans(cur.fetchone()[0][0]["Plan"])
        assert scans and not [s for s in scans if s["Node Type"] == "Seq Scan"]
        # Each account's newest rows past the cursor (a row more to see a page's end, one
        # more to close a run of equal transfers), then the page's rows by id.
        bound = sum(min(n, page_size + 2) for n in per_account.values()) + page_size + 1
        assert sum(_rows_read(s) for s in scans) <= bound
        assert sum(per_account.values()) > 3 * bound
