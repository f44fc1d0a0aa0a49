"""Marketplace's domain errors; their codes are in marketplace.error_codes."""

from core.errors import Conflict, DomainError, InvalidInput
from marketplace.error_codes import MarketErrorCode


class InvalidWindow(InvalidInput):
    code: str = MarketErrorCode.INVALID_WINDOW


class NodeNotInBankMode(InvalidInput):
    code: str = MarketErrorCode.NODE_NOT_IN_BANK_MODE


class DepositOverlap(Conflict):
    code: str = MarketErrorCode.DEPOSIT_OVERLAP


class InsufficientInventory(Conflict):
    code: str = MarketErrorCode.INSUFFICIENT_INVENTORY


class AdvanceLimitExceeded(DomainError):
    code: str = MarketErrorCode.ADVANCE_LIMIT_EXCEEDED
    status = 402


class SellBackNotAllowed(InvalidInput):
    code: str = MarketErrorCode.SELL_BACK_NOT_ALLOWED


class WindowTooFarAhead(InvalidInput):
    code: str = MarketErrorCode.WINDOW_TOO_FAR_AHEAD


class WindowTooLong(InvalidInput):
    code: str = MarketErrorCode.WINDOW_TOO_LONG


class DepositTooFarAhead(InvalidInput):
    code: str = MarketErrorCode.DEPOSIT_TOO_FAR_AHEAD


class DepositTooLong(InvalidInput):
    code: str = MarketErrorCode.DEPOSIT_TOO_LONG


class GpusNotReported(InvalidInput):
    """The node's agent has not reported (nvidia-smi) the GPUs a deposit names."""

    code: str = MarketErrorCode.GPUS_NOT_REPORTED
