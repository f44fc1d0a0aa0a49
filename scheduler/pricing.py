"""The one place usage becomes tokens."""


def charge_for(gpu_seconds: int, rate_per_gpu_hour: int) -> int:
    """ceil(gpu_seconds * rate / 3600) in integer arithmetic: a started token is charged."""
    if gpu_seconds < 0 or rate_per_gpu_hour < 0:
        raise ValueError("usage and rate are never negative")
    return -(-gpu_seconds * rate_per_gpu_hour // 3600)


def fee_of(charge: int, fee_bps: int) -> int:
    """The platform's part of a charge, rounded down: the provider keeps the rest."""
    return charge * fee_bps // 10_000
