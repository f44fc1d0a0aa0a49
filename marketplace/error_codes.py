"""The marketplace's error codes: deposits', blocks', advances' and sell-backs'."""

from enum import StrEnum


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
    WINDOW_TOO_FAR_AHEAD = "window_too_far_ahead"
    WINDOW_TOO_LONG = "window_too_long"
