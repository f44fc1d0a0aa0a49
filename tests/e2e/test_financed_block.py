"""An SME finances a block and sees exactly the schedule its loan then has."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from banking.models import Loan, Organization
from banking.services.customers import organization_create, organization_signup
from banking.services.ledger import grant_post
from banking.services.lending import credit_line_set
from marketplace.services.deposits import deposit_create
from scheduler.services.nodes import node_register
from tests.e2e.conftest import UI

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def _rows(ui: UI, selector: str) -> list[list[str]]:
    return [[c.strip() for c in row.split("\t")]
            for row in ui.page.locator(f"{selector} tbody tr").all_inner_texts()]


def test_a_financed_block_shows_the_schedule_the_loan_then_has(ui: UI, settings) -> None:
    settings.SCHEDULER_AUTO_APPROVE_NODES = True
    provider = organization_create(name="Bank GPU Co", is_buyer=False, is_provider=True)
    node = node_register(provider_id=provider.pk, name="vault-1", gpu_class="H100-80GB",
                         gpu_count=8, region="eu-west", mode="bank").node
    type(node).objects.filter(pk=node.pk).update(gpus_reported=8)  # its agent's inventory
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                   end=start + timedelta(hours=6))
    org = organization_signup(name="Borrow Co", email="cfo@borrow.example",
                              password="correct-horse-42").organization
    grant_post(organization_id=org.pk, amount=10**9, reason="funds")
    credit_line_set(organization_id=org.pk, limit=10**10, apr_bps=1200, max_term_months=12)

    ui.sign_in("cfo@borrow.example", "correct-horse-42")
    ui.goto("/blocks/", "blocks")
    ui.page.select_option("#id_gpu_class", "H100-80GB")
    ui.page.fill("#id_gpu_count", "4")
    ui.page.fill("#id_start", start.strftime("%Y-%m-%dT%H:%M"))
    ui.page.fill("#id_hours", "4")
    ui.page.select_option("#id_payment", "financed")
    ui.page.fill("#id_term_months", "6")
    ui.page.click("[data-testid=get-quote]")
    ui.page.wait_for_selector("[data-testid=schedule]")
    ui.shot("quote with schedule")
    quoted = _rows(ui, "[data-testid=schedule]")
    assert len(quoted) == 6
    ui.page.click("[data-testid=confirm-block]")
    ui.page.wait_for_url(re.compile(r".*/blocks/(\?gpu_class=[^&]+)?$"))
    ui.shot("block bought")

    loan = Loan.objects.get(organization=Organization.objects.get(pk=org.pk))
    installments = list(loan.installments.order_by("number"))
    assert [[str(i.number), i.due_date.isoformat(), f"{i.principal:,}", f"{i.interest:,}",
             f"{i.principal + i.interest:,}"] for i in installments] == [
                 [r[0], r[1], r[2], r[3], r[4].splitlines()[0]] for r in quoted]
    assert {r[5] for r in quoted} == {"Upcoming"}
    ui.goto("/loans/", "loans")
    shown = _rows(ui, "[data-testid=loan-schedule]")
    assert [r[:4] for r in shown] == [r[:4] for r in quoted]
