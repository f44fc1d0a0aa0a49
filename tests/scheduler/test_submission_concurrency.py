from collections import Counter

import pytest
from django.db import connection

from banking.selectors import wallet_get
from scheduler.models import Job
from scheduler.pricing import charge_for
from scheduler.services.jobs import job_submit
from tests.concurrency import run_threads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("pg-concurrency"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


def test_64_concurrent_submissions_against_a_wallet_for_20_holds_accept_exactly_20(
        make_org, online_node, h100):
    online_node(gpus=8)
    hold = charge_for(60, h100.on_demand_rate)
    buyer = make_org(tokens=20 * hold)

    def submit(i: int) -> object:
        return job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 5}},
                          gpu_class="H100-80GB", gpu_count=1, max_duration_s=60)

    outcomes = [getattr(r, "code", repr(r)) if isinstance(r, BaseException) else "accepted"
                for r in run_threads(64, submit)]
    assert Counter(outcomes) == {"accepted": 20, "insufficient_funds": 44}
    assert Job.objects.filter(organization=buyer).count() == 20
    summary = wallet_get(organization_id=buyer.pk)
    assert (summary.available, summary.held) == (0, 20 * hold)
