"""Token prices: quotes from an amount or a number of tokens, volume tiers, bounds, and
the rounding of the one pricing module."""

from decimal import Decimal

import pytest

from banking.models import TokenPrice, TokenPriceTier
from banking.services.payments import (
    cents_for_tokens,
    token_prices_seed,
    tokens_for_cents,
    tokens_for_refund,
    topup_quote,
)
from core.errors import InvalidInput

pytestmark = pytest.mark.django_db


def test_the_seeded_usd_price_is_30_cents_per_million_tokens():
    price = TokenPrice.objects.get(currency="usd")
    assert price.cents_per_million == Decimal("30")
    assert (price.min_amount_cents, price.max_amount_cents) == (100, 1_000_000)
    assert list(price.tiers.values_list("min_amount_cents", "cents_per_million")) == [
        (100_000, Decimal("27"))
    ]


def test_ten_dollars_buy_33_333_333_tokens_rounded_down():
    quote = topup_quote(currency="USD", amount_cents=1000)
    assert (quote.currency, quote.amount_cents, quote.tokens) == ("usd", 1000, 33_333_333)
    assert quote.cents_per_million == Decimal("30")


def test_the_volume_tier_applies_from_its_threshold_on():
    below = topup_quote(currency="usd", amount_cents=99_999)
    at = topup_quote(currency="usd", amount_cents=100_000)
    assert below.cents_per_million == Decimal("30")
    assert below.tokens == 3_333_300_000
    assert at.cents_per_million == Decimal("27")
    assert at.tokens == 3_703_703_703


def test_a_quote_for_tokens_charges_enough_cents_to_buy_at_least_them():
    quote = topup_quote(currency="usd", tokens=10_000_000)
    assert quote.amount_cents == 300
    assert quote.tokens == 10_000_000
    odd = topup_quote(currency="usd", tokens=10_000_001)
    assert odd.amount_cents == 301
    assert odd.tokens == 10_033_333


def test_a_quote_for_many_tokens_uses_the_tier_price():
    quote = topup_quote(currency="usd", tokens=4_000_000_000)
    assert quote.cents_per_million == Decimal("27")
    assert quote.amount_cents == 108_000
    assert quote.tokens == 4_000_000_000


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"amount_cents": 99}, "topup_below_minimum"),
        ({"amount_cents": 1_000_001}, "topup_above_maximum"),
        ({"tokens": 1}, "topup_below_minimum"),
        ({"amount_cents": 100, "tokens": 5}, "invalid"),
        ({}, "invalid"),
    ],
)
def test_bad_quotes_are_refused_with_a_code(kwargs, code):
    with pytest.raises(InvalidInput) as info:
        topup_quote(currency="usd", **kwargs)
    assert info.value.code == code


def test_an_unknown_or_inactive_currency_is_refused():
    with pytest.raises(InvalidInput, match="not offered") as info:
        topup_quote(currency="eur", amount_cents=1000)
    assert info.value.code == "currency_not_supported"
    TokenPrice.objects.filter(currency="usd").update(is_active=False)
    with pytest.raises(InvalidInput, match="none"):
        topup_quote(currency="usd", amount_cents=1000)


def test_an_admin_price_with_its_own_tiers_is_used():
    price = TokenPrice.objects.create(currency="eur", cents_per_million=Decimal("28.5"),
                                      min_amount_cents=500, max_amount_cents=50_000)
    TokenPriceTier.objects.create(price=price, min_amount_cents=10_000,
                                  cents_per_million=Decimal("25"))
    assert topup_quote(currency="eur", amount_cents=570).tokens == 20_000_000
    assert topup_quote(currency="eur", amount_cents=10_000).tokens == 400_000_000


def test_rounding_at_the_boundaries():
    assert tokens_for_cents(1, Decimal("30")) == 33_333
    assert cents_for_tokens(33_333, Decimal("30"), round_up=True) == 1
    assert cents_for_tokens(33_334, Decimal("30"), round_up=True) == 2
    assert cents_for_tokens(33_334, Decimal("30"), round_up=False) == 1
    assert tokens_for_refund(tokens=100, amount_cents=3, refunded_cents=1) == 34
    assert tokens_for_refund(tokens=100, amount_cents=3, refunded_cents=3) == 100
    assert tokens_for_refund(tokens=100, amount_cents=3, refunded_cents=5) == 100


def test_seeding_prices_again_keeps_what_an_admin_set():
    TokenPrice.objects.filter(currency="usd").update(cents_per_million=Decimal("31"))
    token_prices_seed()
    token_prices_seed()
    price = TokenPrice.objects.get(currency="usd")
    assert price.cents_per_million == Decimal("31")
    assert price.tiers.count() == 1
