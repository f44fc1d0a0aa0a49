"""Token prices: the only place where fiat and tokens are converted and rounded."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from banking.error_codes import PaymentErrorCode
from banking.models import TokenPrice, TokenPriceTier
from core.errors import InvalidInput

MILLION = 1_000_000


def tokens_for_cents(amount_cents: int, cents_per_million: Decimal) -> int:
    """Whole tokens that `amount_cents` buys, rounded down."""
    return math.floor(Fraction(amount_cents) * MILLION / Fraction(cents_per_million))


def cents_for_tokens(tokens: int, cents_per_million: Decimal, *, round_up: bool) -> int:
    """What `tokens` cost (top-up: rounded up) or fetch (payout: rounded down)."""
    exact = Fraction(tokens) * Fraction(cents_per_million) / MILLION
    return math.ceil(exact) if round_up else math.floor(exact)


def tokens_for_refund(*, tokens: int, amount_cents: int, refunded_cents: int) -> int:
    """Tokens a (partial) refund of a top-up takes back: the refunded share of what the
    payment bought, rounded up; all of them for a full refund."""
    if refunded_cents >= amount_cents:
        return tokens
    return min(tokens, math.ceil(Fraction(tokens * refunded_cents, amount_cents)))


@dataclass(frozen=True)
class Quote:
    currency: str
    amount_cents: int
    tokens: int
    cents_per_million: Decimal
    min_amount_cents: int
    max_amount_cents: int


def _active_price(currency: str) -> TokenPrice:
    code = (currency or "").strip().lower()
    price = (
        TokenPrice.objects.filter(currency=code, is_active=True).prefetch_related("tiers").first()
    )
    if price is None:
        supported = sorted(
            TokenPrice.objects.filter(is_active=True).values_list("currency", flat=True)
        )
        raise InvalidInput(
            f"Top-ups in {code.upper() or '(none)'} are not offered; "
            f"use one of: {', '.join(c.upper() for c in supported) or 'none'}.",
            code=PaymentErrorCode.CURRENCY_NOT_SUPPORTED,
            fields={"currency": ["Not supported."]},
        )
    return price


def _rates(price: TokenPrice) -> list[tuple[int, Decimal]]:
    """(minimum amount, rate) from the highest tier down to the base price."""
    tiers = sorted(
        ((t.min_amount_cents, t.cents_per_million) for t in price.tiers.all()), reverse=True
    )
    return [*tiers, (0, price.cents_per_million)]


def topup_quote(
    *, currency: str, amount_cents: int | None = None, tokens: int | None = None
) -> Quote:
    """How many tokens `amount_cents` buys, or what `tokens` cost, at today's price (volume
    tiers included). Exactly one of the two is given. Raises on a top-up below the
    minimum (`topup_below_minimum`) or above the maximum (`topup_above_maximum`)."""
    if (amount_cents is None) == (tokens is None):
        raise InvalidInput(
            "Give either amount_cents or tokens.",
            fields={"amount_cents": ["Give this or tokens."], "tokens": ["Or this."]},
        )
    price = _active_price(currency)
    rates = _rates(price)
    if amount_cents is not None:
        if isinstance(amount_cents, bool) or amount_cents <= 0:
            raise InvalidInput("amount_cents must be positive.",
                               fields={"amount_cents": ["Must be positive."]})
        rate = next(r for floor_cents, r in rates if amount_cents >= floor_cents)
        amount = amount_cents
    else:
        assert tokens is not None
        if isinstance(tokens, bool) or tokens <= 0:
            raise InvalidInput("tokens must be positive.", fields={"tokens": ["Must be positive."]})
        for floor_cents, rate in rates:
            amount = cents_for_tokens(tokens, rate, round_up=True)
            if amount >= floor_cents:
                break
    bought = tokens_for_cents(amount, rate)
    money = f"{price.currency.upper()} {Decimal(price.min_amount_cents) / 100:.2f}"
    if amount < price.min_amount_cents or bought <= 0:
        raise InvalidInput(
            f"The smallest top-up is {money}.",
            code=PaymentErrorCode.TOPUP_BELOW_MINIMUM,
            fields={"min_amount_cents": price.min_amount_cents, "amount_cents": amount},
        )
    if amount > price.max_amount_cents:
        most = f"{price.currency.upper()} {Decimal(price.max_amount_cents) / 100:.2f}"
        raise InvalidInput(
            f"The largest top-up is {most}.",
            code=PaymentErrorCode.TOPUP_ABOVE_MAXIMUM,
            fields={"max_amount_cents": price.max_amount_cents, "amount_cents": amount},
        )
    return Quote(
        currency=price.currency,
        amount_cents=amount,
        tokens=bought,
        cents_per_million=rate,
        min_amount_cents=price.min_amount_cents,
        max_amount_cents=price.max_amount_cents,
    )


DEFAULT_PRICES: dict[str, dict[str, Any]] = {
    # USD 0.30 per 1M tokens, USD 1 to USD 10,000 a top-up, USD 0.27 from USD 1,000.
    "usd": {
        "cents_per_million": Decimal("30"),
        "min_amount_cents": 100,
        "max_amount_cents": 1_000_000,
        "tiers": [(100_000, Decimal("27"))],
    },
}


def token_prices_seed() -> None:
    """Create the default prices where none is set (migration 0004 seeds the same);
    an admin's prices are left alone."""
    for currency, spec in DEFAULT_PRICES.items():
        price, created = TokenPrice.objects.get_or_create(
            currency=currency,
            defaults={k: v for k, v in spec.items() if k != "tiers"},
        )
        if created:
            TokenPriceTier.objects.bulk_create(
                [TokenPriceTier(price=price, min_amount_cents=floor, cents_per_million=rate)
                 for floor, rate in spec["tiers"]]
            )
