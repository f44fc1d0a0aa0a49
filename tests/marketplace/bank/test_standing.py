"""Approval and freezing gate every act: an unapproved or frozen organization's nodes get
no work and stay out of the catalog; it cannot deposit, draw advances, buy, submit or
cash out, each refusal with its own code and nothing changed; admin says why."""

from datetime import timedelta

import pytest

from banking.errors import OrganizationFrozen, OrganizationNotApproved
from banking.models import Account, Hold, Organization, Payout
from banking.services.customers import organization_set_status
from banking.services.payouts import payout_account_set, payout_request
from marketplace.models import Advance, Block, CapacityDeposit, InventorySlot
from marketplace.services.advances import advance_create
from marketplace.services.blocks import block_buy
from marketplace.services.deposits import deposit_create
from scheduler.models import Assignment, Job, Node
from scheduler.selectors import gpu_class_availability
from scheduler.services.jobs import job_submit
from scheduler.services.placement import placement_run
from tests.earnings import earn
from tests.marketplace.bank.conftest import next_hour

M = 1_000_000


@pytest.fixture
def fake_gateway():
    from banking.gateway import reset_gateway, set_gateway_for_tests
    from banking.gateway.fake import FakeGateway

    set_gateway_for_tests(FakeGateway())
    yield
    reset_gateway()


def _balances(org: Organization) -> dict[str, int]:
    return dict(Account.objects.filter(organization=org).values_list("purpose", "balance"))


def test_an_unapproved_providers_node_gets_no_work_is_not_listed_and_cannot_cash_out(
        provider, buyer, online_node, bank_node, h100, fake_gateway):
    market = online_node(gpus=8)
    bank = bank_node(gpus=8)
    earn(provider.pk, 50 * M)
    payout_account_set(organization_id=provider.pk, stripe_account_id="acct_unapproved")
    job = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                     gpu_class="H100-80GB", gpu_count=1, max_duration_s=600)
    Organization.objects.filter(pk=provider.pk).update(is_approved=False)
    before = _balances(provider)
    assert placement_run().placed == 0
    assert Job.objects.get(pk=job.pk).state == Job.State.QUEUED
    assert Assignment.objects.filter(node__in=[market, bank]).count() == 0
    assert gpu_class_availability().get(h100.pk, []) == []

    start = next_hour()
    with pytest.raises(OrganizationNotApproved, match="cannot deposit") as deposit:
        deposit_create(provider_id=provider.pk, node_id=bank.pk, gpu_count=8, start=start,
                       end=start + timedelta(hours=4))
    with pytest.raises(OrganizationNotApproved, match="cannot advance") as advance:
        advance_create(provider_id=provider.pk, amount=1 * M, idempotency_key="adv")
    with pytest.raises(OrganizationNotApproved, match="cannot payout") as payout:
        payout_request(organization_id=provider.pk, tokens=20 * M, idempotency_key="p")
    assert {deposit.value.code, advance.value.code, payout.value.code} == {
        "organization_not_approved"}
    assert (CapacityDeposit.objects.count(), Advance.objects.count(), Payout.objects.count(),
            InventorySlot.objects.count()) == (0, 0, 0, 0)
    assert Hold.objects.filter(organization=provider).count() == 0
    assert _balances(provider) == before

    Organization.objects.filter(pk=provider.pk).update(is_approved=True)
    assert placement_run().placed == 1  # approved, the same node takes the job


def test_a_frozen_providers_nodes_get_no_work(provider, buyer, online_node, h100):
    online_node(gpus=8)
    job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
               gpu_class="H100-80GB", gpu_count=1, max_duration_s=600)
    organization_set_status(organization_id=provider.pk, status=Organization.Status.FROZEN)
    assert placement_run().placed == 0
    assert gpu_class_availability().get(h100.pk, []) == []


def test_a_frozen_buyer_cannot_submit_or_buy_and_nothing_is_held(provider, buyer, bank_node):
    node = bank_node(gpus=8)
    start = next_hour()
    deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                   end=start + timedelta(hours=4))
    organization_set_status(organization_id=buyer.pk, status=Organization.Status.FROZEN)
    before = _balances(buyer)
    with pytest.raises(OrganizationFrozen, match="cannot submit") as submit:
        job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                   gpu_class="H100-80GB", gpu_count=1, max_duration_s=600)
    with pytest.raises(OrganizationFrozen, match="cannot buy") as buy:
        block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=1, start=start,
                  end=start + timedelta(hours=2), payment="wallet", idempotency_key="b")
    assert {submit.value.code, buy.value.code} == {"organization_frozen"}
    assert (Job.objects.count(), Block.objects.count()) == (0, 0)
    assert set(InventorySlot.objects.values_list("booked", flat=True)) == {0}
    assert _balances(buyer) == before


def test_a_frozen_provider_cannot_deposit(provider, bank_node):
    node = bank_node(gpus=8)
    organization_set_status(organization_id=provider.pk, status=Organization.Status.FROZEN)
    start = next_hour()
    with pytest.raises(OrganizationFrozen, match="cannot deposit"):
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=8, start=start,
                       end=start + timedelta(hours=4))
    assert CapacityDeposit.objects.count() == 0
    assert Node.objects.get(pk=node.pk).mode == Node.Mode.BANK


def test_admin_shows_why_an_organization_is_blocked(admin_client, make_org):
    ok = make_org("Fine Co")
    frozen = make_org("Frozen Co", provider=True)
    organization_set_status(organization_id=frozen.pk, status=Organization.Status.FROZEN)
    Organization.objects.filter(pk=frozen.pk).update(is_approved=False)
    page = admin_client.get("/admin/banking/organization/").content.decode()
    assert "frozen by an operator; not approved" in page
    detail = admin_client.get(f"/admin/banking/organization/{ok.pk}/change/").content.decode()
    assert "blocked because" in detail.lower()
