"""The embedded demo's seed shows every product, and seeding again changes nothing but
what must be renewed (keys, node tokens, capacity ahead)."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from banking.models import CreditLine, Organization, Payout
from marketplace.models import Advance, Block, CapacityDeposit, PriceHistory
from marketplace.services.blocks import availability
from scheduler.models import Job, Node
from tests.scheduler.conftest import (  # noqa: F401  the scheduler's autouse fixtures
    _auto_approve_and_eager_kicks,
    _no_broker,
)

pytestmark = pytest.mark.django_db


def test_the_seed_shows_every_product_and_is_safe_to_repeat(tmp_path: Path) -> None:
    out = tmp_path / "demo.json"
    call_command("seed_demo", output=str(out))
    first = json.loads(out.read_text())
    call_command("seed_demo", output=str(out))
    second = json.loads(out.read_text())

    buyer = Organization.objects.get(pk=second["buyer"]["organization_id"])
    provider = Organization.objects.get(pk=second["provider"]["organization_id"])
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    # blocks can be bought at once: every hour of the next 14 days has bank GPUs free
    # (two of the H100s are the running block's for its first day)
    h100 = availability(gpu_class="H100-80GB", start=hour + timedelta(hours=1),
                        end=hour + timedelta(days=13))
    assert h100.min_free_gpus == 6
    later = availability(gpu_class="H100-80GB", start=hour + timedelta(days=1),
                         end=hour + timedelta(days=13))
    assert later.min_free_gpus == 8
    a100 = availability(gpu_class="A100-80GB", start=hour + timedelta(hours=1),
                        end=hour + timedelta(days=13))
    assert a100.min_free_gpus == 4
    assert CreditLine.objects.get(organization=buyer).limit == 2_000_000_000
    block = Block.objects.get(organization=buyer)
    assert block.start <= timezone.now() < block.end
    job = Job.objects.get(organization=buyer)
    assert job.reservation_id == block.reservation_id
    assert list(Payout.objects.filter(organization=provider).values_list("status", flat=True)
                ) == [Payout.Status.PAID]
    assert Advance.objects.filter(provider=provider).count() == 1
    assert CapacityDeposit.objects.filter(provider=provider,
                                          status=CapacityDeposit.Status.COMPLETED).count() == 3
    assert sum(CapacityDeposit.objects.filter(provider=provider).values_list(
        "earned", flat=True)) == 3 * 8 * 4 * 5_000_000
    oldest = PriceHistory.objects.order_by("created_at").first()
    assert oldest is not None and oldest.created_at < timezone.now() - timedelta(days=29)
    # renewed at every start: node tokens; kept: the nodes themselves
    assert [n["name"] for n in second["bank_nodes"]] == ["bank-h100-1", "bank-a100-1"]
    assert first["bank_nodes"][0]["token"] != second["bank_nodes"][0]["token"]
    assert Node.objects.filter(provider=provider, mode=Node.Mode.BANK).count() == 2
    assert out.stat().st_mode & 0o777 == 0o600
