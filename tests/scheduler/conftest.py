from typing import Any

import pytest
from django.test import override_settings


@pytest.fixture(autouse=True)
def _auto_approve_and_eager_kicks(settings: Any) -> None:
    settings.SCHEDULER_AUTO_APPROVE_NODES = True


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Service tests drive placement and settlement themselves; kicks go nowhere."""
    monkeypatch.setattr("scheduler.enqueue.placement_run", lambda: None)
    monkeypatch.setattr("scheduler.enqueue.usage_settle", lambda assignment_id: None)


@pytest.fixture
def submit_job(buyer: Any) -> Any:
    """A one-minute simulated job of the buyer's on H100s, queued (not placed)."""
    from scheduler.services.jobs import job_submit

    def submit(*, gpu_count: int = 1, max_duration_s: int = 600) -> Any:
        return job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 60}},
                          gpu_class="H100-80GB", gpu_count=gpu_count,
                          max_duration_s=max_duration_s)

    return submit


def job_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "spec": {"simulate": {"seconds": 10}},
        "gpu_class": "H100-80GB",
        "gpu_count": 1,
        "max_duration_s": 3600,
    }
    body.update(overrides)
    return body


__all__ = ["override_settings"]
