"""The wallet page: balances, statement filters, CSV, spend chart, transfer detail."""

import csv
import io
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from banking.models import Entry
from banking.selectors import spend_per_day
from banking.services.holds import hold_capture, hold_place
from banking.services.ledger import grant_post, system_account


def _csv_rows(response):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_wallet_shows_the_balances(org, owner_client):
    grant_post(organization_id=org.pk, amount=1_500_000, reason="welcome")
    hold_place(organization_id=org.pk, amount=250_000, idempotency_key="job-1", reference="job:1")

    response = owner_client.get(reverse("store:wallet"))

    summary = response.context["summary"]
    assert (summary.available, summary.held, summary.credit_limit, summary.owed) == (
        1_250_000, 250_000, 0, 0)
    html = response.content.decode()
    assert 'data-testid="available">1,250,000<' in html
    assert 'data-testid="held">250,000<' in html


def test_the_statement_filters_by_kind(org, owner_client):
    grant_post(organization_id=org.pk, amount=1_000, reason="welcome")
    hold_place(organization_id=org.pk, amount=300, idempotency_key="job-1", reference="job:1")

    response = owner_client.get(reverse("store:wallet"), {"kind": "grant"})

    entries = list(response.context["page"].object_list)
    assert [(e.transfer.kind, e.amount) for e in entries] == [("grant", 1_000)]


def test_reversed_dates_are_a_filter_error(org, owner_client):
    response = owner_client.get(reverse("store:wallet"),
                                {"date_from": "2026-02-01", "date_to": "2026-01-01"})

    assert response.context["filters"].errors["date_to"] == ["Must not be before the start date."]


def test_the_csv_is_the_apis_csv_for_the_same_filters(org, owner_client, api_client_for):
    grant_post(organization_id=org.pk, amount=1_000, reason="welcome")
    hold_place(organization_id=org.pk, amount=300, idempotency_key="job-1", reference="job:1")

    page_csv = _csv_rows(owner_client.get(reverse("store:statement_csv"), {"kind": "hold"}))
    api_csv = _csv_rows(api_client_for(org).get("/api/v1/wallet/transfers/?format=csv&kind=hold"))

    assert page_csv == api_csv
    assert len(page_csv) == 3  # header, wallet -300, held +300


def test_the_csv_link_keeps_the_filters(org, owner_client):
    response = owner_client.get(reverse("store:wallet"), {"kind": "grant"})

    assert f'href="{reverse("store:statement_csv")}?kind=grant"' in response.content.decode()


def test_spend_per_day_counts_captures_and_purchases_only(org, owner_client):
    grant_post(organization_id=org.pk, amount=10_000, reason="welcome")
    hold = hold_place(organization_id=org.pk, amount=4_000, idempotency_key="job-1",
                      reference="job:1")
    revenue = system_account("platform_revenue")
    hold_capture(hold_id=hold.pk, legs=[(revenue.pk, 1_234)], idempotency_key="cap-1")

    days = spend_per_day(organization_id=org.pk, days=3)
    today = timezone.now().date()

    assert days == [(today - timedelta(days=2), 0), (today - timedelta(days=1), 0),
                    (today, 1_234)]
    data = owner_client.get(reverse("store:spend_json")).json()
    assert data["days"][-1] == {"day": today.isoformat(), "tokens": 1_234}
    assert len(data["days"]) == 30


def test_a_transfer_of_ones_own_shows_its_entries(org, owner_client):
    transfer = grant_post(organization_id=org.pk, amount=1_000, reason="welcome")

    response = owner_client.get(reverse("store:transfer_detail", args=[transfer.pk]))

    assert response.status_code == 200
    assert [e.amount for e in response.context["entries"]] == [1_000]


def test_another_organizations_transfer_is_a_404(make_org, client_for):
    mine, theirs = make_org("Mine"), make_org("Theirs")
    transfer = grant_post(organization_id=theirs.pk, amount=1_000, reason="theirs")

    response = client_for(mine).get(reverse("store:transfer_detail", args=[transfer.pk]))

    assert response.status_code == 404
    assert Entry.objects.filter(transfer=transfer).count() == 2


def test_setting_and_clearing_the_low_balance_alert(org, owner_client):
    from marketplace.models import LowBalanceAlert

    response = owner_client.post(reverse("store:low_balance_alert"), {"threshold": "500000"})
    assert response.status_code == 302
    assert LowBalanceAlert.objects.get(organization=org).threshold == 500_000
    page = owner_client.get(reverse("store:wallet"))
    assert page.context["alert_form"].initial["threshold"] == 500_000

    owner_client.post(reverse("store:low_balance_alert"), {"threshold": ""})

    assert not LowBalanceAlert.objects.filter(organization=org).exists()


def test_a_non_positive_alert_threshold_is_a_form_error_on_the_wallet_page(org, owner_client):
    response = owner_client.post(reverse("store:low_balance_alert"), {"threshold": "0"})

    assert response.status_code == 200
    assert response.context["alert_form"].errors["threshold"] == [
        "Ensure this value is greater than or equal to 1."]
    assert response.context["summary"].available == 0


def test_the_wallet_page_runs_as_many_queries_for_20_entries_as_for_2(org, owner_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(reverse("store:wallet")).status_code == 200
        return len(captured)

    for i in range(2):
        grant_post(organization_id=org.pk, amount=10 + i, reason=f"grant {i}")
    queries()  # reads the dollar price once, for the next half minute
    few = queries()
    for i in range(18):
        grant_post(organization_id=org.pk, amount=100 + i, reason=f"more {i}")

    assert queries() == few


def _wallet_sql(client, params):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("store:wallet"), params)
    return response, [q["sql"].upper() for q in captured]


def test_the_ledger_view_pages_without_counting_the_ledger(org, owner_client):
    # 25 a page: 26 grants (a wallet and a system entry each) fill the first page and
    # leave one older entry of the organization's own for the second.
    for i in range(26):
        grant_post(organization_id=org.pk, amount=1_000 + i, reason=f"grant {i}")

    first, sql = _wallet_sql(owner_client, {"view": "ledger"})
    second, _ = _wallet_sql(owner_client, {"view": "ledger", "page": "2"})

    assert not [q for q in sql if "COUNT(" in q]
    first_page, second_page = first.context["page"], second.context["page"]
    assert [e.amount for e in first_page.object_list] == [1_025 - i for i in range(25)]
    assert first_page.has_next and not first_page.has_previous
    assert [e.amount for e in second_page.object_list] == [1_000]
    assert second_page.has_previous and not second_page.has_next
    html = first.content.decode()
    assert "page=2" in html and "Page 1<" in html


def test_a_hostile_page_number_is_the_first_or_last_bounded_page(org, owner_client):
    grant_post(organization_id=org.pk, amount=1_000, reason="welcome")

    for raw, number in (("9" * 40, 1), ("-3", 1), ("abc", 1), ("0", 1), ("99999", 1), ("²", 1),
                        ("\x00", 1),
                        ("9999", 9999)):
        response = owner_client.get(reverse("store:wallet"), {"view": "ledger", "page": raw})
        assert response.status_code == 200
        assert response.context["page"].number == number
    assert list(owner_client.get(reverse("store:wallet"),
                                 {"view": "ledger", "page": "9999"}).context["page"].object_list
                ) == []
