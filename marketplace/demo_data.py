"""What the embedded demo shows on first start: every product in use.

Bank-mode nodes with capacity deposited for the next 14 days (blocks can be bought at
once), a credit line on the demo buyer (financing works), a block running now with a job
on it, a provider with earnings (yield of past deposits), an advance and a paid payout,
and a month of price history. Everything goes through the same services as the product;
only the clock is set back where the demo needs a past (`demo_as_of`), because windows may
not start in the past.

`demo_seed_first` runs once per database; `demo_capacity_extend` at every start keeps
14 days of capacity ahead; `demo_node_tokens` issues the bank nodes' agents new tokens.
"""

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

from django.conf import settings
from django.utils import timezone

from banking.models import Organization
from banking.services.lending import credit_line_set
from banking.services.payouts import (
    payout_account_set,
    payout_approve,
    payout_execute,
    payout_request,
)
from core.errors import DomainError
from marketplace.models import CapacityDeposit, PriceHistory
from marketplace.services.advances import advance_create, advance_limit
from marketplace.services.blocks import block_buy
from marketplace.services.deposits import deposit_create, yield_accrue
from scheduler.models import GpuClass, Node, NodeHeartbeat
from scheduler.services.jobs import job_submit
from scheduler.services.nodes import node_approve, node_register, node_token_rotate

CAPACITY_DAYS = 14
HISTORY_DAYS = 30
HISTORY_STEP = timedelta(hours=6)
# (name, GPU class, GPUs, region): the bank's demo inventory.
BANK_NODES = [
    ("bank-h100-1", "H100-80GB", 8, "eu-west"),
    ("bank-a100-1", "A100-80GB", 4, "us-east"),
]
PAST_DEPOSIT_DAYS = (3, 2, 1)
PAST_DEPOSIT_HOURS = 4


@contextmanager
def demo_as_of(when: datetime) -> Iterator[None]:
    """The services read the clock through `django.utils.timezone.now`: the demo's past
    is written as if it happened then."""
    with mock.patch("django.utils.timezone.now", return_value=when):
        yield


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


logger = logging.getLogger(__name__)


def bank_nodes(provider: Organization) -> list[Node]:
    nodes = []
    for name, gpu_class, gpus, region in BANK_NODES:
        node = Node.objects.filter(provider=provider, name=name).first()
        if node is None:
            node = node_register(provider_id=provider.pk, name=name, gpu_class=gpu_class,
                                 gpu_count=gpus, region=region, mode=Node.Mode.BANK,
                                 labels={"simulated": "true"}).node
        if not node.is_approved:
            node = node_approve(node_id=node.pk)
        if node.gpus_reported is None:
            # The simulated agent lists this many GPUs (what its nvidia-smi would report);
            # a deposit may not name more GPUs than the agent reports.
            Node.objects.filter(pk=node.pk, gpus_reported__isnull=True).update(
                gpus_reported=gpus)
            node.gpus_reported = gpus
        nodes.append(node)
    return nodes


def demo_node_tokens(provider: Organization) -> list[dict[str, object]]:
    """A new token for each bank node's agent (a token is kept hashed: shown only when
    issued), with what the agent needs to run it."""
    out: list[dict[str, object]] = []
    for node in bank_nodes(provider):
        out.append({"name": node.name, "gpu_class": node.gpu_class.name,
                    "gpus": node.gpu_count, "vram_gb": node.vram_gb, "region": node.region,
                    "token": node_token_rotate(provider_id=provider.pk, node_id=node.pk)})
    return out


def demo_capacity_extend(provider: Organization, *, now: datetime | None = None) -> int:
    """Deposit each bank node's GPUs up to `CAPACITY_DAYS` ahead. Returns deposits made."""
    now = now or timezone.now()
    horizon = _hour(now) + timedelta(days=CAPACITY_DAYS)
    made = 0
    for node in bank_nodes(provider):
        last = (CapacityDeposit.objects.filter(node=node).order_by("-end")
                .values_list("end", flat=True).first())
        start = max(_hour(now) + timedelta(hours=1), last or now)
        if start >= horizon:
            continue
        deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=node.gpu_count,
                       start=start, end=horizon,
                       idempotency_key=f"demo-deposit:{node.pk}:{start:%Y%m%d%H}")
        made += 1
    return made


def demo_seed_first(*, buyer: Organization, provider: Organization) -> bool:
    """Everything that happens once. Returns False when the demo was seeded before."""
    if CapacityDeposit.objects.filter(provider=provider).exists():
        return False
    now = timezone.now()
    nodes = bank_nodes(provider)
    _price_history(now)
    _past_deposits(provider, nodes[0], now)
    _online_history(nodes, now)
    _running_block(buyer, provider, nodes, now)
    credit_line_set(organization_id=buyer.pk, limit=2_000_000_000, apr_bps=1200,
                    max_term_months=12)
    # The bank's rules may refuse the demo an advance or a payout (a node's history too
    # short, earnings not yet payable): the demo then starts without them.
    limit = advance_limit(provider_id=provider.pk).available
    if limit > 0:
        advance_create(provider_id=provider.pk, amount=min(limit, 50_000_000),
                       idempotency_key="demo-advance")
    payout_account_set(organization_id=provider.pk, stripe_account_id="acct_demo_provider")
    try:
        payout = payout_request(organization_id=provider.pk,
                                tokens=settings.PAYOUT_MIN_TOKENS * 4,
                                idempotency_key="demo-payout")
        payout_approve(payout_id=payout.pk)
        payout_execute(payout_id=payout.pk)
    except DomainError as exc:
        logger.warning("demo: no paid payout (%s)", exc.message)
    return True


def _price_history(now: datetime) -> None:
    """A month of on-demand rates every six hours: a walk inside each class's bounds that
    ends at today's rate."""
    rng = random.Random(18)
    rows = []
    for cls in GpuClass.objects.all():
        rate = cls.on_demand_rate
        step = max(1, cls.on_demand_rate * settings.BANK_PRICE_STEP_BPS // 10_000)
        t = now - HISTORY_STEP
        while t > now - timedelta(days=HISTORY_DAYS):
            rows.append((cls, rate, t))
            rate = min(cls.max_rate, max(cls.min_rate, rate + rng.choice((-step, 0, step))))
            t -= HISTORY_STEP
    made = PriceHistory.objects.bulk_create(
        [PriceHistory(gpu_class=c, on_demand_rate=r, utilization_permille=700)
         for c, r, _ in rows])
    for row, (_c, _r, at) in zip(made, rows, strict=True):
        PriceHistory.objects.filter(pk=row.pk).update(created_at=at)


def _past_deposits(provider: Organization, node: Node, now: datetime) -> None:
    """A few afternoons of the H100 node deposited and online: the provider's earnings."""
    for days in PAST_DEPOSIT_DAYS:
        start = _hour(now - timedelta(days=days)).replace(hour=12)
        end = start + timedelta(hours=PAST_DEPOSIT_HOURS)
        with demo_as_of(start):
            deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=node.gpu_count,
                           start=start, end=end, idempotency_key=f"demo-past:{days}")
        minutes = PAST_DEPOSIT_HOURS * 60
        NodeHeartbeat.objects.bulk_create(
            NodeHeartbeat(node=node, at=start + timedelta(minutes=m, seconds=5),
                          free_gpus=node.gpu_count, busy_gpus=0) for m in range(minutes))
        with demo_as_of(end + timedelta(minutes=1)):
            yield_accrue(now=end + timedelta(minutes=1))


def _online_history(nodes: list[Node], now: datetime) -> None:
    """A heartbeat in each hour of the last BANK_ADVANCE_HISTORY_DAYS days: the demo's
    simulated nodes have been online that long, the verified history an advance is
    lent against (written after the past deposits have earned, so their yield stays)."""
    hour = _hour(now)
    hours = settings.BANK_ADVANCE_HISTORY_DAYS * 24
    for node in nodes:
        NodeHeartbeat.objects.bulk_create(
            [NodeHeartbeat(node=node, at=hour - timedelta(hours=h, minutes=30),
                           free_gpus=node.gpu_count, busy_gpus=0) for h in range(hours)],
            ignore_conflicts=True)


def _running_block(buyer: Organization, provider: Organization, nodes: list[Node],
                   now: datetime) -> None:
    """Capacity from the top of this hour, a block bought then, a job on it now."""
    hour = _hour(now)
    with demo_as_of(hour):
        for node in nodes:
            deposit_create(provider_id=provider.pk, node_id=node.pk, gpu_count=node.gpu_count,
                           start=hour, end=hour + timedelta(days=CAPACITY_DAYS),
                           idempotency_key=f"demo-deposit:{node.pk}:{hour:%Y%m%d%H}")
        block = block_buy(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=2,
                          start=hour, end=hour + timedelta(hours=24), payment="wallet",
                          idempotency_key="demo-block")
    for node in nodes:
        # the demo's nodes count as online since the hour began (their agents start now)
        NodeHeartbeat.objects.bulk_create(
            NodeHeartbeat(node=node, at=hour + timedelta(minutes=m, seconds=5),
                          free_gpus=node.gpu_count, busy_gpus=0)
            for m in range(int((now - hour).total_seconds() // 60) + 1))
    job_submit(organization_id=buyer.pk, gpu_class="H100-80GB", gpu_count=2,
               spec={"simulate": {"seconds": 3 * 3600, "ai_tokens_per_second": 800}},
               max_duration_s=4 * 3600, reservation_id=block.reservation_id,
               idempotency_key="demo-block-job")
