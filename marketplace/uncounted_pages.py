"""Pages of a list that grows, for the storefront: one more row than the page is read to
tell whether an older page exists, so the whole set is never counted (Django's Paginator
runs a COUNT(*) of it on every view). The API's lists use cursor pages instead."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from core.bounds import digits_value

# A page number is typed by strangers: past this the links would never lead.
MAX_PAGE = 9999


@dataclass(frozen=True)
class UncountedPage:
    object_list: list[Any]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_other_pages(self) -> bool:
        return self.has_previous or self.has_next

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def previous_page_number(self) -> int:
        return self.number - 1


def page_number(raw: str | None) -> int:
    """The requested page: 1 unless `raw` is a whole number within bounds."""
    number = digits_value(raw, most=len(str(MAX_PAGE)))
    return 1 if number is None else min(max(number, 1), MAX_PAGE)


def uncounted_page(rows: QuerySet[Any] | Sequence[Any], size: int,
                   raw_number: str | None) -> UncountedPage:
    """Page `raw_number` of `rows` (a queryset or a list), newest first as given."""
    number = page_number(raw_number)
    start = (number - 1) * size
    window = list(rows[start:start + size + 1])
    return UncountedPage(object_list=window[:size], number=number,
                         has_next=len(window) > size)
