"""Token amounts in the admin's lists with their dollars beside them, "8,300,000 tokens
(≈ $2.49)", through the one formatting helper the storefront uses (banking.fiat_display):
an operator reading a list should not have to work out what a balance is worth."""

from collections.abc import Callable
from typing import Any

from django.contrib import admin

from banking.fiat_display import tokens_with_usd


def tokens_column(field: str, label: str | None = None) -> Callable[[Any], str]:
    """A `list_display` column for the integer token field `field`, sortable by it."""

    @admin.display(description=label or field.replace("_", " "), ordering=field)
    def column(obj: Any) -> str:
        value = getattr(obj, field)
        # None (no floor, no threshold) reads as the admin's empty value, as the plain field
        if value is None:
            return admin.site.empty_value_display
        return tokens_with_usd(int(value))

    column.__name__ = f"{field}_with_usd"
    return column
