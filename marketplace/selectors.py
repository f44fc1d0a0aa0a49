from django.db.models import QuerySet

from core.errors import NotFound
from marketplace.models import Advance, Block, CapacityDeposit, LowBalanceAlert, PriceHistory
from scheduler.models import GpuClass


def deposit_list(*, provider_id: int) -> QuerySet[CapacityDeposit]:
    return CapacityDeposit.objects.filter(provider_id=provider_id).select_related(
        "node", "gpu_class").order_by("-id")


def advance_list(*, provider_id: int) -> QuerySet[Advance]:
    return Advance.objects.filter(provider_id=provider_id).order_by("-id")


def block_list(*, organization_id: int) -> QuerySet[Block]:
    return Block.objects.filter(organization_id=organization_id).select_related(
        "gpu_class", "reservation").order_by("-start")


def block_get(*, organization_id: int, block_id: int) -> Block:
    block = block_list(organization_id=organization_id).filter(pk=block_id).first()
    if block is None:
        raise NotFound("Block not found.")
    return block


def price_history_list(*, gpu_class_id: int) -> QuerySet[PriceHistory]:
    if not GpuClass.objects.filter(pk=gpu_class_id).exists():
        raise NotFound("GPU class not found.")
    return PriceHistory.objects.filter(gpu_class_id=gpu_class_id).order_by("-created_at", "-id")


def low_balance_alert_get(*, organization_id: int) -> LowBalanceAlert | None:
    return LowBalanceAlert.objects.filter(organization_id=organization_id).first()
