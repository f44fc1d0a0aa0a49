"""Tokens shown in dollars beside them, for people: "8,300,000 tokens (≈ $2.49)".

The ledger stays in tokens; this is display only, at the current top-up price of 1M
tokens in USD (the active `TokenPrice`, without volume tiers). What a provider receives
for a payout is not this: it is the payout price (`banking.services.payouts`), shown
where a payout is.

The price is read at most twice a minute per process (pages show many amounts);
saving a `TokenPrice` forgets it at once.
"""

import time
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.db.models.signals import post_delete, post_save

from banking.models import TokenPrice

MILLION = 1_000_000
_TTL_S = 30.0
_cached: tuple[float, Decimal | None] | None = None


def usd_cents_per_million() -> Decimal | None:
    """Today's price of 1M tokens in US cents, or None when USD top-ups are not offered."""
    global _cached
    now = time.monotonic()
    if _cached is not None and now - _cached[0] < _TTL_S:
        return _cached[1]
    price = (TokenPrice.objects.filter(currency="usd", is_active=True)
             .values_list("cents_per_million", flat=True).first())
    _cached = (now, price)
    return price


def usd_price_forget(**_kwargs: object) -> None:
    global _cached
    _cached = None


post_save.connect(usd_price_forget, sender=TokenPrice, dispatch_uid="fiat_display_forget")
post_delete.connect(usd_price_forget, sender=TokenPrice, dispatch_uid="fiat_display_forget_d")


def usd_for_tokens(tokens: int, cents_per_million: Decimal | None = None) -> Decimal | None:
    """Dollars that `tokens` are worth at today's price, to the cent (half up)."""
    price = usd_cents_per_million() if cents_per_million is None else cents_per_million
    if price is None:
        return None
    cents = Fraction(int(tokens)) * Fraction(price) / MILLION
    return (Decimal(cents.numerator) / Decimal(cents.denominator) / 100).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP)


def format_usd(dollars: Decimal, *, approximate: bool = True) -> str:
    """Decimal("2.49") -> "≈ $2.49"; an amount that rounds to zero but is not zero reads
    "< $0.01"; negative amounts keep a true minus sign."""
    sign = "\u2212" if dollars < 0 else ""
    value = abs(dollars)
    prefix = "\u2248 " if approximate else ""
    if value == 0:
        return f"{prefix}$0.00"
    return f"{prefix}{sign}${value:,.2f}"


def usd_text(tokens: int) -> str:
    """"≈ $2.49" for `tokens`, "< $0.01" for a positive amount worth less than a cent,
    or "" when there is no USD price."""
    dollars = usd_for_tokens(tokens)
    if dollars is None:
        return ""
    if dollars == 0 and tokens:
        return "< $0.01"
    return format_usd(dollars)


def tokens_with_usd(tokens: int) -> str:
    """"8,300,000 tokens (≈ $2.49)"."""
    usd = usd_text(tokens)
    sign = "\u2212" if tokens < 0 else ""
    text = f"{sign}{abs(int(tokens)):,} token{'' if abs(int(tokens)) == 1 else 's'}"
    return f"{text} ({usd})" if usd else text
