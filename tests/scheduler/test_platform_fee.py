"""The platform fee is set in admin, globally and per GPU class, kept as history, locked
into each job at submission and shown on the job's statement line."""

from datetime import timedelta

import time_machine
from django.utils import timezone

from banking.models import Transfer
from banking.models.ledger import TransferKind
from scheduler.fees import platform_fee_bps
from scheduler.models import Assignment, GpuClass, PlatformFee
from scheduler.pricing import charge_for, fee_of
from scheduler.services.agent import assignment_complete
from scheduler.services.jobs import job_submit
from scheduler.services.placement import placement_run


def _submit(buyer):
    return job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                      gpu_class="H100-80GB", gpu_count=1, max_duration_s=3600)


def test_a_fee_changed_in_admin_applies_to_jobs_submitted_after_not_before(
        admin_client, buyer, online_node, settings):
    node = online_node(gpus=8)
    h100 = GpuClass.objects.get(name="H100-80GB")
    before = _submit(buyer)
    assert before.fee_bps == settings.SCHEDULER_PLATFORM_FEE_BPS == 1000
    assert admin_client.post("/admin/scheduler/platformfee/add/",
                             {"gpu_class": "", "fee_bps": 2500}).status_code == 302
    global_fee = _submit(buyer)
    assert admin_client.post("/admin/scheduler/platformfee/add/",
                             {"gpu_class": h100.pk, "fee_bps": 500}).status_code == 302
    class_fee = _submit(buyer)
    assert [before.fee_bps, global_fee.fee_bps, class_fee.fee_bps] == [1000, 2500, 500]
    assert platform_fee_bps(h100.pk) == 500
    a100 = GpuClass.objects.exclude(pk=h100.pk).first()
    assert a100 is not None and platform_fee_bps(a100.pk) == 2500  # the global one
    assert list(PlatformFee.objects.order_by("id").values_list("gpu_class_id", "fee_bps")) == [
        (None, 2500), (h100.pk, 500)]  # the history

    assert placement_run().placed == 3
    with time_machine.travel(timezone.now() + timedelta(minutes=30)):
        for job in (before, global_fee, class_fee):
            a = Assignment.objects.get(job=job)
            assignment_complete(node_id=node.pk, assignment_id=a.pk, seq=1, gpu_seconds=1200)
    for job, bps in ((before, 1000), (global_fee, 2500), (class_fee, 500)):
        a = Assignment.objects.get(job=job)
        price = charge_for(1200, job.rate_per_gpu_hour)
        assert (a.charged, a.fee) == (price, fee_of(price, bps))
        line = Transfer.objects.get(kind=TransferKind.CAPTURE, reference=f"job:{job.pk}")
        assert line.memo == f"1200 GPU-seconds on node {node.pk}, platform fee {bps / 100:g}%"


def test_fee_rows_are_history_and_cannot_be_changed_in_admin(admin_client):
    fee = PlatformFee.objects.create(fee_bps=700)
    admin_client.post(f"/admin/scheduler/platformfee/{fee.pk}/change/", {"fee_bps": 1})
    admin_client.post(f"/admin/scheduler/platformfee/{fee.pk}/delete/", {"post": "yes"})
    assert list(PlatformFee.objects.values_list("fee_bps", flat=True)) == [700]
