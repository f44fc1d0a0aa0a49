"""A bought block is what jobs name: during its window they are placed on the bank's
nodes and charged nothing more."""

from datetime import timedelta

import time_machine

from banking.selectors import wallet_get
from marketplace.services.blocks import block_buy
from marketplace.services.deposits import deposit_create
from scheduler.models import Job, Node
from scheduler.services.jobs import job_submit
from scheduler.services.nodes import node_heartbeat
from scheduler.services.placement import placement_run
from tests.marketplace.bank.conftest import next_hour


def test_a_job_naming_the_block_runs_on_the_bank_node_without_a_new_charge(
        buyer, provider, online_node):
    market = online_node(gpus=8)  # an open-market node of the same class, cheaper or not
    bank = online_node(gpus=4, mode=Node.Mode.BANK)
    start = next_hour()
    deposit_create(provider_id=provider.pk, node_id=bank.pk, gpu_count=4, start=start,
                   end=start + timedelta(hours=2))
    block = block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=4,
                      start=start, end=start + timedelta(hours=2), payment="wallet",
                      idempotency_key="blk")
    paid = wallet_get(organization_id=buyer.pk).available
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        for node in (market, bank):
            node_heartbeat(node_id=node.pk, free_gpus=node.gpu_count, busy_gpus=0,
                           utilization=0.0, agent_version="test")
        job = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                         gpu_class="H100-80GB", gpu_count=4, max_duration_s=3600,
                         reservation_id=block.pk)
        result = placement_run()
    assert result.assignments == [(job.pk, bank.pk, 4)]
    assert Job.objects.get(pk=job.pk).state == "placed"
    assert wallet_get(organization_id=buyer.pk).available == paid  # no hold for block jobs
