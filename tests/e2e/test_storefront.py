"""The storefront in a real browser: sign up, the wallet, the statement and its CSV, API
keys, another organization's pages, the phone layout."""

import csv
import re
from pathlib import Path

import pytest

from banking.models import Entry, Organization
from banking.services.customers import api_key_authenticate, api_key_issue, organization_signup
from banking.services.holds import hold_capture, hold_place
from banking.services.ledger import grant_post, system_account
from tests.e2e.conftest import UI

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

PASSWORD = "correct-horse-42"


def _member(name: str, email: str) -> Organization:
    return organization_signup(name=name, email=email, password=PASSWORD).organization


def _text(ui: UI, testid: str) -> str:
    return ui.page.inner_text(f"[data-testid={testid}]").strip()


def test_sign_up_then_a_grant_shows_on_the_wallet_and_in_the_csv(ui: UI) -> None:
    # Given a visitor who signs up as a buyer
    ui.goto("/", "home")
    ui.page.click("text=Open an account")
    ui.page.fill("#id_organization_name", "Lumen Labs")
    ui.page.check("input[name=kind][value=buyer]")
    ui.page.fill("#id_email", "ada@lumen.example")
    ui.page.fill("#id_password1", PASSWORD)
    ui.shot("signup filled")
    ui.page.click("button[type=submit]")
    ui.page.wait_for_url(re.compile(r".*/wallet/$"))
    ui.shot("wallet empty")
    # then the wallet is empty
    assert _text(ui, "available") == "0"
    assert _text(ui, "held") == "0"
    assert "No entries yet" in ui.page.inner_text("main")
    assert ui.page.locator("[data-testid=spend-empty]").is_visible()

    # When an operator grants tokens and a job holds some
    org = Organization.objects.get(name="Lumen Labs")
    grant = grant_post(organization_id=org.pk, amount=2_500_000, reason="Welcome credit")
    hold = hold_place(organization_id=org.pk, amount=400_000, reference="job:1",
                      idempotency_key="j1")
    hold_capture(hold_id=hold.pk, legs=[(system_account("platform_revenue").pk, 150_000)],
                 idempotency_key="j1-usage-1", reference="job:1", memo="job 1: 3 GPU-hours")
    ui.page.reload()
    ui.shot("wallet with grant")

    # Then the wallet shows them and the statement lists the grant
    assert _text(ui, "available") == "2,100,000"
    assert _text(ui, "held") == "250,000"
    # the readable statement: the grant, and the job's charge (its hold is no line)
    lines = ui.page.locator("[data-testid=statement-lines] tbody tr")
    assert lines.count() == 2
    assert "\u2212150,000" in lines.nth(0).inner_text()
    assert "Grant: Welcome credit" in lines.nth(1).inner_text()
    # the ledger's lines, one per entry
    ui.page.click("[data-testid=ledger-view]")
    ui.page.wait_for_selector("tr[data-entry]")
    rows = ui.page.locator("table.statement tbody tr")
    assert rows.count() == 4
    assert ui.page.locator("#spend-chart").is_visible()
    grant_entry = grant.entries.get(account__organization=org)
    grant_row = ui.page.locator(f"tr[data-entry='{grant_entry.pk}']")
    assert "Promotional grant" in grant_row.inner_text()
    assert "+2,500,000" in grant_row.inner_text()
    assert "Welcome credit" in grant_row.inner_text()

    # And the CSV download matches the ledger's entries exactly
    with ui.page.expect_download() as info:
        ui.page.click("text=Download CSV")
    path = Path(info.value.path())
    with path.open(newline="") as fh:
        downloaded = list(csv.reader(fh))
    ledger = [
        [str(e.id), str(e.transfer_id), e.transfer.created_at.isoformat(), e.transfer.kind,
         e.account.purpose, str(e.amount), e.transfer.reference, e.transfer.memo]
        for e in Entry.objects.filter(account__organization=org)
        .select_related("transfer", "account").order_by("-transfer_id", "-id")
    ]
    assert downloaded[0] == ["entry_id", "transfer_id", "created_at", "kind", "account",
                             "amount", "reference", "memo"]
    assert downloaded[1:] == ledger

    # And filtering by kind narrows the statement
    ui.page.select_option("#id_kind", "grant")
    ui.page.click("form.filters button[type=submit]")
    expect(ui.page.locator("table.statement tbody tr")).to_have_count(1)
    ui.shot("statement filtered")
    assert ui.page.url.endswith("/wallet/?view=ledger&kind=grant&account=&date_from=&date_to=")
    assert ui.page.locator("#spend-chart").is_visible()  # swapped in place: no reload
    csv_link = ui.page.get_attribute("text=Download CSV", "href")
    assert csv_link == ("/wallet/statement.csv?view=ledger&kind=grant&account=&date_from=&"
                        "date_to=")


def test_an_api_key_is_shown_once_and_can_be_revoked(ui: UI) -> None:
    org = _member("Keyholders", "kim@keys.example")
    ui.sign_in("kim@keys.example", PASSWORD)

    ui.goto("/api-keys/", "api keys empty")
    ui.page.fill("#id_name", "ci pipeline")
    ui.page.click("button:has-text('Create key')")
    ui.page.wait_for_url(re.compile(r".*/api-keys/created/$"))
    ui.shot("key created")
    secret = ui.page.input_value("[data-testid=secret]")
    key = api_key_authenticate(secret)
    assert key is not None
    assert key.organization_id == org.pk

    ui.goto("/api-keys/created/", "created page again")
    assert secret not in ui.page.content()
    assert "shown once only" in ui.page.inner_text("main")
    assert "ci pipeline" in ui.page.inner_text("table")

    ui.page.click(f"tr[data-key='{key.prefix}'] >> text=Revoke")
    ui.page.wait_for_load_state()
    ui.shot("revoke confirm")
    assert api_key_authenticate(secret) is not None  # nothing happens before the POST
    ui.page.click("button:has-text('Revoke key')")
    ui.page.wait_for_url(re.compile(r".*/api-keys/$"))
    ui.shot("key revoked")
    assert api_key_authenticate(secret) is None
    assert "Revoked" in ui.page.inner_text(f"tr[data-key='{key.prefix}']")


def test_another_organizations_pages_answer_404(ui: UI) -> None:
    _member("Mine", "me@mine.example")
    theirs = _member("Theirs", "them@theirs.example")
    their_transfer = grant_post(organization_id=theirs.pk, amount=9_000, reason="theirs")
    their_key = api_key_issue(organization_id=theirs.pk)
    ui.sign_in("me@mine.example", PASSWORD)

    transfer_page = ui.goto(f"/wallet/transfers/{their_transfer.pk}/", "their transfer")
    key_page = ui.goto(f"/api-keys/{their_key.api_key.pk}/revoke/", "their key")

    assert transfer_page.status == 404
    assert key_page.status == 404
    assert api_key_authenticate(their_key.secret) is not None


def test_the_wallet_fits_a_phone(phone_ui: UI) -> None:
    org = _member("Pocket Compute", "pat@pocket.example")
    grant_post(organization_id=org.pk, amount=12_345_678, reason="Launch promotion")
    hold = hold_place(organization_id=org.pk, amount=45_678, reference="job:7",
                      idempotency_key="p1")
    hold_capture(hold_id=hold.pk, legs=[(system_account("platform_revenue").pk, 5_678)],
                 idempotency_key="p1-usage-1", reference="job:7", memo="job 7: usage")
    phone_ui.sign_in("pat@pocket.example", PASSWORD)

    phone_ui.goto("/wallet/", "wallet at 390px")

    assert _text(phone_ui, "available") == "12,300,000"
    overflow = phone_ui.page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow == 0
    phone_ui.shot("wallet viewport", full_page=False)
    api_key_issue(organization_id=org.pk, name="notebook")
    for path in ("/api-keys/", "/members/", "/jobs/"):
        phone_ui.goto(path, f"{path} at 390px")
        assert phone_ui.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth") == 0
