"""Template helpers: token and money amounts, query strings."""

from typing import Any

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

register = template.Library()


@register.filter
def tokens(value: Any) -> str:
    """1234567 -> "1,234,567" (whole tokens, never a decimal)."""
    if value is None or value == "":
        return "0"
    return str(intcomma(int(value)))


@register.filter
def cents(value: Any) -> str:
    """2500 -> "25.00", 123456 -> "1,234.56" (a money amount kept in cents)."""
    return f"{int(value) / 100:,.2f}"


@register.filter
def signed_tokens(value: Any) -> str:
    """An entry's amount with its sign: "+1,000" or "\u2212250" (a true minus sign)."""
    amount = int(value)
    if amount > 0:
        return f"+{intcomma(amount)}"
    if amount < 0:
        return f"\u2212{intcomma(-amount)}"
    return "0"


@register.simple_tag
def page_query(base: str, page: int) -> str:
    """A query string for `page` that keeps the filters in `base`."""
    return f"?{base}&page={page}" if base else f"?page={page}"
