"""What a provider receives for a payout, in its currency, before it confirms: the same
conversion `payout_request` records (the payout price, rounded down to the cent)."""

from django.conf import settings

from banking.services.payments import cents_for_tokens
from banking.services.payouts import payout_price


def payout_cents(tokens: int) -> int:
    return cents_for_tokens(int(tokens), payout_price(), round_up=False)


def payout_value_text(tokens: int) -> str:
    """10,000,000 tokens -> "you receive USD 2.50"."""
    currency = settings.PAYOUT_CURRENCY.upper()
    return f"you receive {currency} {payout_cents(tokens) / 100:,.2f}"
