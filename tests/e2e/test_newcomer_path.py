"""A newcomer's path on the seeded demo, in Chromium, with a real Celery worker and a
real node agent: buy a block from the seeded capacity, finance one with the seeded credit
line (what the quote says is due now is what leaves the wallet), submit a job on a block
from the form, read a job's single statement line with its dollar amount, and see a
payout's value in dollars before confirming it."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from banking.fiat_display import format_usd, usd_for_tokens
from banking.models import Organization, Payout
from banking.selectors import wallet_get
from marketplace.models import Block
from scheduler.models import Job, Node
from tests.e2e.conftest import UI
from tests.live import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser"), pytest.mark.serial]

PASSWORD = "suanli-admin"


def _quote(ui: UI, start: str, *, gpus: int, hours: int, financed: bool) -> None:
    ui.goto("/blocks/", "blocks")
    ui.page.select_option("#id_gpu_class", "H100-80GB")
    ui.page.fill("#id_gpu_count", str(gpus))
    ui.page.fill("#id_start", start)
    ui.page.fill("#id_hours", str(hours))
    ui.page.select_option("#id_payment", "financed" if financed else "wallet")
    if financed:
        ui.page.fill("#id_term_months", "6")
    ui.page.click("[data-testid=get-quote]")
    ui.page.wait_for_selector("[data-testid=quote]")
    ui.shot("financed quote" if financed else "quote")


def test_the_newcomers_path_on_the_seeded_demo(ui: UI, celery_worker, start_agent,
                                              tmp_path: Path) -> None:
    out = tmp_path / "demo.json"
    call_command("seed_demo", output=str(out))
    demo = json.loads(out.read_text())
    buyer = Organization.objects.get(pk=demo["buyer"]["organization_id"])
    seeded_block = Block.objects.get(organization=buyer)
    start_agent(demo["provider"]["api_key"], nodes=1, gpus=8, prefix="market")
    wait_until(lambda: Node.objects.filter(status="online", mode="market").exists(), 30,
               "a market node online")

    ui.sign_in("buyer@suanli.local", PASSWORD)
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=30)
    start_text = start.strftime("%Y-%m-%dT%H:%M")

    # Buy a block from the seeded capacity: the free bank GPUs come first
    ui.goto("/blocks/", "blocks page")
    free = ui.page.locator("[data-testid=free-bank-gpus] tr[data-class='H100-80GB']")
    assert free.locator("td").nth(2).inner_text().strip() == "6"
    _quote(ui, start_text, gpus=2, hours=4, financed=False)
    ui.page.click("[data-testid=confirm-block]")
    ui.page.wait_for_url(re.compile(r".*/blocks/\?gpu_class=H100-80GB$"))
    ui.shot("block bought")
    assert Block.objects.filter(organization=buyer).count() == 2
    assert ui.page.locator("[data-testid=calendar]").get_attribute("data-class") == "H100-80GB"

    # Finance one with the seeded credit line: due now is what leaves the wallet
    _quote(ui, start_text, gpus=4, hours=48, financed=True)
    due_now = int(ui.page.get_attribute("[data-testid=due-now]", "data-tokens") or "0")
    assert ui.page.inner_text("[data-testid=apr]").strip() == "12%"
    button = ui.page.inner_text("[data-testid=confirm-block]")
    assert button == f"Pay {due_now:,} tokens now, finance " + \
        ui.page.inner_text("[data-testid=financed]").split(" tokens")[0]
    before = wallet_get(organization_id=buyer.pk).available
    ui.page.click("[data-testid=confirm-block]")
    ui.page.wait_for_url(re.compile(r".*/blocks/\?gpu_class=H100-80GB$"))
    ui.shot("financed block bought")
    financed = Block.objects.get(organization=buyer, payment="financed")
    assert financed.down_payment == due_now > 0
    assert wallet_get(organization_id=buyer.pk).available == before - due_now

    # A job on the running seeded block, from the form: class and count follow the block
    ui.goto("/jobs/", "jobs")
    ui.page.select_option("#id_block", str(seeded_block.pk))
    assert ui.page.input_value("#id_gpu_class") == "H100-80GB"
    assert ui.page.input_value("#id_gpu_count") == "2"
    ui.page.fill("#id_simulate_seconds", "5")
    ui.page.click("[data-testid=submit-job]")
    ui.page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    ui.shot("block job")
    block_job = Job.objects.filter(organization=buyer).order_by("-id").first()
    assert block_job is not None and block_job.reservation_id == seeded_block.reservation_id
    assert f"block #{seeded_block.pk}" in ui.page.inner_text("[data-testid=job-block]")

    # An on-demand job runs on the market node; its statement line is one line in $ too
    ui.goto("/jobs/", "jobs again")
    ui.page.select_option("#id_gpu_class", "H100-80GB")
    ui.page.fill("#id_gpu_count", "8")
    ui.page.fill("#id_max_duration_s", "120")
    ui.page.fill("#id_simulate_seconds", "20")
    ui.page.click("[data-testid=submit-job]")
    ui.page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    job = Job.objects.filter(organization=buyer, reservation__isnull=True).get()
    ui.page.wait_for_selector("[data-testid=job-state]:has-text('Succeeded')", timeout=90_000)
    ui.shot("job succeeded")
    charged = int(ui.page.inner_text("[data-testid=job-cost]").split(" ")[0].replace(",", ""))
    assert charged > 0
    ui.goto("/wallet/", "statement")
    lines = ui.page.locator(f"[data-testid=statement-lines] tr[data-job='{job.pk}']")
    assert lines.count() == 1
    text = lines.inner_text()
    dollars = usd_for_tokens(-charged)
    assert dollars is not None
    assert f"\u2212{charged:,}" in text and format_usd(dollars) in text
    assert "2 \u00d7" not in text and "8 \u00d7 H100-80GB" in text

    # The provider sees what it receives in dollars before confirming a payout
    ui.page.click("form.logout-form button")
    ui.sign_in("provider@suanli.local", PASSWORD)
    ui.goto("/provider/", "portal")
    assert "At least 10,000,000 tokens (you receive USD 2.50)" in ui.page.inner_text("main")
    paid_before = Payout.objects.filter(organization_id=demo["provider"]["organization_id"])
    assert paid_before.count() == 1
    # the seeded provider has a payout account, so moving money needs a second factor:
    # the refusal says so, changes nothing and leads to turning one on
    ui.page.fill("#id_tokens", "20000000")
    ui.page.click("button:has-text('Request payout')")
    ui.page.wait_for_selector("[data-code=mfa_required]")
    ui.shot("payout asks for a second factor")
    assert paid_before.count() == 1
    ui.page.click("[data-testid=turn-on-mfa]")
    ui.page.wait_for_url(re.compile(r".*/accounts/reauthenticate/\?next=%2Faccounts%2F2fa%2Ftotp"
                                    r"%2Factivate%2F$"))
    ui.enrol_totp(PASSWORD)
    ui.goto("/provider/", "portal with a second factor")
    ui.page.fill("#id_tokens", "20000000")
    ui.page.click("button:has-text('Request payout')")
    ui.page.wait_for_selector("[data-testid=confirm]")
    ui.shot("payout confirm")
    assert "you receive USD 5.00" in ui.page.inner_text("[data-testid=confirm]")
    assert paid_before.count() == 1
    ui.page.click("[data-testid=confirm-button]")
    ui.page.wait_for_url(re.compile(r".*/provider/$"))
    assert paid_before.count() == 2
