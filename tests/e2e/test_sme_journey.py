"""An SME's whole journey in a real browser, with real node agents and a real Celery
worker: sign up, top up by card, submit a job, watch it run to success, find the charge
on the statement, and download the CSV that matches the ledger."""

import csv
import re
from pathlib import Path

import pytest

from banking.models import Entry, Organization, TopUp
from banking.services.customers import api_key_issue, organization_create
from scheduler.models import Job, Node
from tests.e2e.conftest import UI
from tests.live import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PASSWORD = "correct-horse-42"


def _sign_up(ui: UI, name: str, email: str) -> Organization:
    ui.sign_up(name, email, PASSWORD)
    return Organization.objects.get(name=name)


def test_an_sme_tops_up_runs_a_job_and_finds_the_charge(ui: UI, celery_worker, start_agent):
    provider = organization_create(name="GPU Farm", is_buyer=False, is_provider=True)
    start_agent(api_key_issue(organization_id=provider.pk).secret, nodes=1, gpus=4)
    wait_until(lambda: Node.objects.filter(status="online").exists(), 30, "a node online")

    org = _sign_up(ui, "Lumen Labs", "ada@lumen.example")
    # Top up by card (the fake gateway takes the test card)
    ui.page.fill("#id_amount_usd", "25")
    ui.shot("top up filled")
    ui.page.click("[data-testid=pay]")
    ui.page.wait_for_selector("[data-testid=confirm]")
    ui.shot("confirm the exact amount")
    assert "USD 25.00" in ui.page.inner_text("[data-testid=confirm]")
    ui.page.click("[data-testid=confirm-button]")
    ui.page.wait_for_url(re.compile(r".*/wallet/$"))
    ui.shot("topped up")
    topup = TopUp.objects.get(organization=org)
    assert topup.status == "succeeded"
    assert ui.page.inner_text("[data-testid=available]").strip() == f"{topup.tokens:,}"

    # Submit a job, seeing its maximum cost first
    ui.goto("/jobs/", "jobs")
    ui.page.select_option("#id_gpu_class", "H100-80GB")
    ui.page.fill("#id_gpu_count", "2")
    ui.page.fill("#id_max_duration_s", "120")
    ui.page.fill("#id_simulate_seconds", "4")
    ui.page.wait_for_selector("#estimate strong")
    ui.shot("estimate")
    assert "held" in ui.page.inner_text("#estimate")
    ui.page.click("[data-testid=submit-job]")
    ui.page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    job = Job.objects.get(organization=org)
    # ...and watch it run to success (the page polls)
    ui.page.wait_for_selector("[data-testid=job-state]:has-text('succeeded')", timeout=90_000)
    ui.shot("job succeeded")
    job.refresh_from_db()
    cost = int(ui.page.inner_text("[data-testid=job-cost]").split(" ")[0].replace(",", ""))
    assert cost > 0

    # The charge is on the statement, and the CSV is the ledger
    ui.goto("/wallet/", "wallet after the job")
    line = ui.page.locator(f"[data-testid=statement-lines] tr[data-job='{job.pk}']")
    assert line.count() == 1
    assert f"\u2212{cost:,}" in line.inner_text()
    # ...and in the spend-per-day chart, drawn from the same ledger
    assert ui.page.locator("#spend-chart").is_visible()
    spend = ui.page.evaluate("JSON.parse(document.getElementById('spend-data').textContent)")
    assert spend[-1]["tokens"] == cost
    with ui.page.expect_download() as info:
        ui.page.click("text=Download CSV")
    path = Path(info.value.path())
    rows = list(csv.DictReader(path.open()))
    entries = Entry.objects.filter(account__organization=org).order_by("-transfer_id", "-id")
    assert [(int(r["entry_id"]), int(r["amount"])) for r in rows] == [
        (e.pk, e.amount) for e in entries]
    captured = -sum(int(r["amount"]) for r in rows
                    if r["kind"] == "capture" and r["account"] == "held")
    assert captured == cost


def test_double_clicking_pay_pays_once(ui: UI) -> None:
    org = _sign_up(ui, "Quick Fingers", "bob@quick.example")
    ui.page.fill("#id_amount_usd", "10")
    ui.page.click("[data-testid=pay]")
    ui.page.wait_for_selector("[data-testid=confirm]")
    ui.page.dblclick("[data-testid=confirm-button]")
    ui.page.wait_for_url(re.compile(r".*/wallet/$"))
    ui.page.wait_for_load_state("networkidle")
    ui.shot("after double click")
    assert TopUp.objects.filter(organization=org).count() == 1
    assert TopUp.objects.get(organization=org).status == "succeeded"
