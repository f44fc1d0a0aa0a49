"""The annuity schedule: exact rationals, the documented rounding, the last installment
absorbing every difference."""

from datetime import date
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banking.amortization import (
    ScheduleError,
    add_months,
    annuity_payment,
    annuity_schedule,
    round_half_up,
)


def test_a_million_over_12_months_at_12pct_pays_88849_a_month():
    rows = annuity_schedule(
        principal=1_000_000, apr_bps=1200, term_months=12, first_due=date(2027, 1, 15)
    )
    # P*r/(1-(1+r)^-n) with r = 0.01: 88848.7886..., rounded half up
    exact = 1_000_000 * Fraction(1, 100) / (1 - Fraction(101, 100) ** -12)
    assert Fraction(888485, 10) <= exact < 88849  # 88848.79: rounds up
    assert annuity_payment(principal=1_000_000, apr_bps=1200, term_months=12) == 88849
    assert [r.total for r in rows[:11]] == [88849] * 11
    assert [(r.number, r.principal, r.interest) for r in rows] == [
        (1, 78849, 10000), (2, 79637, 9212), (3, 80434, 8415), (4, 81238, 7611),
        (5, 82051, 6798), (6, 82871, 5978), (7, 83700, 5149), (8, 84537, 4312),
        (9, 85382, 3467), (10, 86236, 2613), (11, 87098, 1751), (12, 87967, 880),
    ]
    assert sum(r.principal for r in rows) == 1_000_000
    assert sum(r.interest for r in rows) == 66_186
    # the last installment absorbs the rounding: 87967 + 880
    assert rows[-1].total == 88_847
    assert [r.due_date for r in rows][:3] == [date(2027, 1, 15), date(2027, 2, 15),
                                               date(2027, 3, 15)]


def test_each_month_the_interest_is_the_balance_times_r_rounded_half_up():
    rows = annuity_schedule(principal=1_000_000, apr_bps=1200, term_months=12,
                            first_due=date(2027, 1, 1))
    balance = 1_000_000
    for row in rows:
        assert row.interest == round_half_up(balance * Fraction(1, 100))
        balance -= row.principal
    assert balance == 0


def test_a_zero_rate_splits_the_principal_equally_and_the_last_takes_the_remainder():
    rows = annuity_schedule(principal=1_000, apr_bps=0, term_months=3, first_due=date(2027, 1, 1))
    assert [(r.principal, r.interest) for r in rows] == [(333, 0), (333, 0), (334, 0)]


def test_due_dates_keep_the_day_and_clamp_to_the_end_of_the_month():
    rows = annuity_schedule(principal=120_000, apr_bps=600, term_months=4,
                            first_due=date(2027, 1, 31))
    assert [r.due_date for r in rows] == [
        date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)
    ]
    assert add_months(date(2027, 12, 31), 2) == date(2028, 2, 29)


def test_round_half_up_rounds_exact_halves_up():
    assert [round_half_up(Fraction(n, 2)) for n in (1, 2, 3, 5)] == [1, 1, 2, 3]
    assert round_half_up(Fraction(2499, 1000)) == 2


@pytest.mark.parametrize(
    ("principal", "apr_bps", "term", "message"),
    [
        (0, 1200, 12, "principal"),
        (1_000, 1200, 0, "term_months"),
        (1_000, -1, 12, "apr_bps"),
        (1_000, 10_001, 12, "apr_bps"),
        (1_000, 1200, 121, "term_months"),
        (10, 1200, 12, "too few"),
        (11, 0, 12, "too few"),
    ],
)
def test_impossible_schedules_are_refused(principal, apr_bps, term, message):
    with pytest.raises(ScheduleError, match=message):
        annuity_schedule(principal=principal, apr_bps=apr_bps, term_months=term,
                         first_due=date(2027, 1, 1))


@given(
    principal=st.integers(min_value=10_000, max_value=10**12),
    apr_bps=st.integers(min_value=0, max_value=10_000),
    term=st.integers(min_value=1, max_value=120),
)
def test_any_schedule_repays_exactly_the_principal_in_level_payments(principal, apr_bps, term):
    if principal < 200 * term:
        return
    try:
        rows = annuity_schedule(principal=principal, apr_bps=apr_bps, term_months=term,
                                first_due=date(2027, 1, 28))
    except ScheduleError as refused:
        # Whole-token rounding, compounded at a high rate over many months, can repay a
        # tiny loan before its last month: such a schedule is refused, never a real one
        # (a million tokens is a fraction of a cent).
        assert principal < 10**6 and "too few" in str(refused)
        return
    assert len(rows) == term
    assert sum(r.principal for r in rows) == principal
    assert all(r.principal >= 0 and r.interest >= 0 and r.total > 0 for r in rows)
    payment = annuity_payment(principal=principal, apr_bps=apr_bps, term_months=term)
    if term > 1:
        assert {r.total for r in rows[:-1]} == {payment}
    # the last installment differs from the level payment by rounding only: at most half a
    # token a month, carried forward at the monthly rate
    bound = Fraction(term) * (1 + Fraction(apr_bps, 120_000)) ** term
    assert abs(rows[-1].total - payment) <= bound
