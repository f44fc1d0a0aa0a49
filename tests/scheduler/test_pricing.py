import pytest

from scheduler.pricing import charge_for, fee_of


@pytest.mark.parametrize(
    ("gpu_seconds", "rate", "expected"),
    [
        (0, 8_300_000, 0),
        (1, 3600, 1),  # exactly one token
        (1, 3601, 2),  # a started token is charged
        (3600, 8_300_000, 8_300_000),
        (3599, 3600, 3599),
        (7, 1, 1),
        (3601, 1, 2),
    ],
)
def test_charge_rounds_up_per_charge(gpu_seconds: int, rate: int, expected: int) -> None:
    assert charge_for(gpu_seconds, rate) == expected


def test_negative_usage_is_refused() -> None:
    with pytest.raises(ValueError, match="never negative"):
        charge_for(-1, 10)


def test_the_fee_rounds_down_so_the_provider_keeps_the_rest() -> None:
    assert fee_of(999, 1000) == 99
    assert fee_of(1000, 1000) == 100
