import threading
from collections import Counter

import pytest
from django.db import connection, connections

from banking.selectors import wallet_get
from scheduler.models import Job
from scheduler.pricing import charge_for
from scheduler.services.jobs import job_submit

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
    barrier = threading.Barrier(64)
    outcomes: list[str] = []

    def submit() -> None:
        try:
            barrier.wait()
            job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 5}},
                       gpu_class="H100-80GB", gpu_count=1, max_duration_s=60)
            outcomes.append("accepted")
        except Exception as exc:
            outcomes.append(getattr(exc, "code", repr(exc)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(outcomes) == {"accepted": 20, "insufficient_funds": 44}
    assert Job.objects.filter(organization=buyer).count() == 20
    summary = wallet_get(organization_id=buyer.pk)
    assert (summary.available, summary.held) == (0, 20 * hold)
