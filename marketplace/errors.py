from enum import StrEnum

from core.errors import Conflict, DomainError, InvalidInput


class MarketErrorCode(StrEnum):
    INVALID_WINDOW = "invalid_window"
    NODE_NOT_IN_BANK_MODE = "node_not_in_bank_mode"
    DEPOSIT_OVERLAP = "deposit_overlap"
    INSUFFICIENT_INVENTORY = "insufficient_inventory"
    ADVANCE_LIMIT_EXCEEDED = "advance_limit_exceeded"
    SELL_BACK_NOT_ALLOWED = "sell_back_not_allowed"
    DEPOSIT_TOO_FAR_AHEAD = "deposit_too_far_ahead"
    DEPOSIT_TOO_LONG = "deposit_too_long"
    GPUS_NOT_REPORTED = "gpus_not_reported"


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


class DepositTooFarAhead(InvalidInput):
    code: str = MarketErrorCode.DEPOSIT_TOO_FAR_AHEAD


class DepositTooLong(InvalidInput):
    code: str = MarketErrorCode.DEPOSIT_TOO_LONG


class GpusNotReported(InvalidInput):
    """The node's agent has not reported (nvidia-smi) the GPUs a deposit names."""

    code: str = MarketErrorCode.GPUS_NOT_REPORTED
