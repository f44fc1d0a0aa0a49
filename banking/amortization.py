"""The annuity schedule of a loan, in whole tokens, computed with exact rationals.

Pure arithmetic: no database, no clock. The storefront shows `annuity_schedule(...)` before
a buyer confirms a financed purchase, and `loan_originate` stores the very same rows, so
what a person is quoted is what the loan gets.

Rounding rule (the only rounding in lending):

* monthly rate ``r = apr_bps / 10000 / 12`` as a `Fraction` (no floats anywhere);
* ``r > 0``: the level payment is ``round_half_up(P * r / (1 - (1 + r) ** -n))``; every month
  the interest is ``round_half_up(balance * r)`` and the principal part is
  ``payment - interest`` (never more than the balance still owed);
* ``r == 0``: the principal is split in equal parts ``P // n``;
* in both cases the LAST installment's principal is whatever balance remains (its interest
  is ``round_half_up(balance * r)``), so the principal parts sum to exactly ``P`` and the
  last installment absorbs every rounding difference.

Due dates are monthly from the first due date, on the same day of the month, clamped to the
month's end (a loan first due on 31 January is due 28/29 February, then 31 March).
"""

import calendar
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

MAX_TERM_MONTHS = 120
MAX_APR_BPS = 10_000  # 100 % a year


class ScheduleError(ValueError):
    """The inputs cannot make a schedule of whole, non-zero installments."""


@dataclass(frozen=True)
class ScheduleRow:
    number: int
    due_date: date
    principal: int
    interest: int

    @property
    def total(self) -> int:
        return self.principal + self.interest


def round_half_up(value: Fraction) -> int:
    """The nearest whole number; exact halves go up (amounts here are never negative)."""
    return int((value + Fraction(1, 2)) // 1)


def monthly_rate(apr_bps: int) -> Fraction:
    return Fraction(apr_bps, 10_000 * 12)


def add_months(start: date, months: int) -> date:
    """`start` moved by whole months, on the same day, clamped to the month's end."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def annuity_payment(*, principal: int, apr_bps: int, term_months: int) -> int:
    """The level monthly payment in whole tokens (round half up); for a zero rate the equal
    principal part `principal // term_months`."""
    r = monthly_rate(apr_bps)
    if r == 0:
        return principal // term_months
    exact = principal * r / (1 - (1 + r) ** -term_months)
    return round_half_up(exact)


def annuity_schedule(
    *, principal: int, apr_bps: int, term_months: int, first_due: date
) -> list[ScheduleRow]:
    """The installments of a loan of `principal` tokens over `term_months` months at
    `apr_bps` basis points a year, first due on `first_due`. See the module docstring for
    the rounding rule."""
    for name, value in (("principal", principal), ("term_months", term_months)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ScheduleError(f"{name} must be a positive whole number.")
    if isinstance(apr_bps, bool) or not isinstance(apr_bps, int) or not (
        0 <= apr_bps <= MAX_APR_BPS
    ):
        raise ScheduleError(f"apr_bps must be a whole number from 0 to {MAX_APR_BPS}.")
    if term_months > MAX_TERM_MONTHS:
        raise ScheduleError(f"term_months must be at most {MAX_TERM_MONTHS}.")

    r = monthly_rate(apr_bps)
    payment = annuity_payment(principal=principal, apr_bps=apr_bps, term_months=term_months)
    rows: list[ScheduleRow] = []
    balance = principal
    for number in range(1, term_months + 1):
        interest = round_half_up(balance * r)
        if number == term_months:
            part = balance
        elif r == 0:
            part = payment
        else:
            # payment >= interest always (the payment exceeds P*r >= balance*r and rounding
            # is monotone); never repay more than is owed.
            part = min(payment - interest, balance)
        rows.append(
            ScheduleRow(
                number=number,
                due_date=add_months(first_due, number - 1),
                principal=part,
                interest=interest,
            )
        )
        balance -= part
    if any(row.total <= 0 for row in rows):
        raise ScheduleError(
            f"{principal} tokens are too few to spread over {term_months} monthly installments."
        )
    return rows
