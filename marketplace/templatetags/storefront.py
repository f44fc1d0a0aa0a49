"""Template helpers: token and money amounts, query strings."""

from typing import Any

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

from banking import fiat_display

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
def abs_tokens(value: Any) -> str:
    """-1234 -> "1,234"."""
    return str(intcomma(abs(int(value or 0))))


@register.filter
def bps_percent(value: Any) -> str:
    """Basis points as a percentage: 1200 -> "12%", 1250 -> "12.5%"."""
    text = f"{int(value or 0) / 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


@register.filter
def node_in_use(node: Any) -> str:
    """A node's GPUs in use now, from the same count as its free GPUs: "4 of 8 (50%)";
    "—" when it is not online (nothing runs there)."""
    if getattr(node, "status", "") != "online" or not node.gpu_count:
        return "—"
    used = max(0, node.gpu_count - max(0, node.free_gpus))
    return f"{used} of {node.gpu_count} ({used * 100 // node.gpu_count}%)"


@register.filter
def signed_tokens(value: Any) -> str:
    """An entry's amount with its sign: "+1,000" or "\u2212250" (a true minus sign)."""
    amount = int(value)
    if amount > 0:
        return f"+{intcomma(amount)}"
    if amount < 0:
        return f"\u2212{intcomma(-amount)}"
    return "0"


@register.filter
def usd(value: Any) -> str:
    """Tokens in dollars at today's token price: 8300000 -> "≈ $2.49" (empty without a
    USD price). The one helper for every amount a person reads in dollars."""
    if value is None or value == "":
        return ""
    return fiat_display.usd_text(int(value))


@register.filter
def tokens_usd(value: Any) -> str:
    """8300000 -> "8,300,000 tokens (≈ $2.49)"."""
    return fiat_display.tokens_with_usd(int(value or 0))


@register.filter
def cents_usd(value: Any) -> str:
    """An exact amount in cents as dollars: 250 -> "$2.50"."""
    return f"${int(value) / 100:,.2f}"


# One word per state for every object a person reads about: a job and its attempts
# say the same ("succeeded", never "completed" for one and "succeeded" for the other).
STATUS_WORDS = {
    "queued": "Waiting for a GPU",
    "placed": "Starting",
    "running": "Running",
    "succeeded": "Succeeded",
    "completed": "Succeeded",
    "failed": "Failed",
    "lost": "Node lost",
    "canceled": "Canceled",
    "pending": "Awaiting approval",
    "pending_approval": "Awaiting approval",
    "approved": "Approved",
    "processing": "Being paid",
    "paid": "Paid",
    "rejected": "Rejected",
    "online": "Online",
    "offline": "Offline",
    "draining": "Draining",
    "disabled": "Disabled",
    "active": "Active",
    "defaulted": "Defaulted",
    "open": "Open",
    "repaid": "Repaid",
    "overdue": "Overdue",
    "delinquent": "Delinquent",
    "written_off": "Written off",
    "due": "Due",
    "upcoming": "Upcoming",
    "created": "Created",
    "expired": "Expired",
    "released": "Released",
    "captured": "Captured",
}


@register.filter
def status_word(value: Any) -> str:
    """A state code in words: "pending_approval" -> "Awaiting approval"."""
    code = str(value or "")
    return STATUS_WORDS.get(code, code.replace("_", " ").capitalize())


@register.simple_tag
def page_query(base: str, page: int) -> str:
    """A query string for `page` that keeps the filters in `base`."""
    return f"?{base}&page={page}" if base else f"?page={page}"
