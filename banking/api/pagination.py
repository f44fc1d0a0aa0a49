"""Every list of the API is paged by keyset (a cursor), not by OFFSET: a page is found
by an index walk from where the last one ended, whatever its depth, and no page counts
the whole set (no COUNT(*)). Rows inserted meanwhile never shift a page, so a reader
walking `next` sees no row twice and skips none that existed when they started."""

from collections.abc import Callable, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView

from core.bounds import OutOfBounds, bounded_text

# Longer than any id or timestamp a page ends on.
CURSOR_POSITION_MAX = 64


class StandardPagination(CursorPagination):
    """Pages in the list's own order (its selector's `order_by`, which ends on a unique
    key; newest first by id when it has none). `next`/`previous` carry opaque cursors."""

    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"

    def get_ordering(self, request: Request, queryset: QuerySet[Any],
                     view: APIView) -> tuple[str, ...]:
        self._model = queryset.model
        ordering = tuple(str(field) for field in queryset.query.order_by)
        return ordering or super().get_ordering(request, queryset, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        """A cursor comes from the client: its position must be a value of the field it
        stands on, or it is refused as any unreadable cursor is (404, not a 500)."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
            try:
                # Bounded as any text a stranger sends: a NUL would reach the query.
                bounded_text(cursor.position, field="cursor", max_length=CURSOR_POSITION_MAX)
                field.to_python(cursor.position)
            except (ValidationError, OutOfBounds) as exc:
                raise NotFound(self.invalid_cursor_message) from exc
        return cursor


SequenceKey = tuple[int, int]


class SequencePagination(StandardPagination):
    """A list put together in Python (bounded where it is built), newest first, paged with
    the same opaque cursors as the lists of rows. A cursor holds the sort key of the row
    its page ended on, never a count of rows, so rows added at the top meanwhile shift
    nothing for a reader walking `next`. Keys are pairs of integers, strictly decreasing
    along the list."""

    def paginate_sequence(self, rows: Sequence[Any], request: Request, *,
                          key: Callable[[Any], SequenceKey]) -> list[Any]:
        self.base_url = request.build_absolute_uri()
        size = self.page_size = self.get_page_size(request) or self.max_page_size
        cursor = self.decode_cursor(request)
        keys = [key(row) for row in rows]
        start, end = 0, None
        if cursor is not None and cursor.position is not None:
            position = _sequence_position(str(cursor.position))
            if cursor.reverse:  # `previous`: the page that ends just before `position`
                end = sum(1 for k in keys if k > position)
                start = max(0, end - size)
            else:
                start = sum(1 for k in keys if k >= position)
        end = min(len(rows), start + size if end is None else end)
        page = list(rows[start:end])
        self._next_key = keys[end - 1] if page and end < len(rows) else None
        self._previous_key = keys[start] if page and start > 0 else None
        return page

    def decode_cursor(self, request: Request) -> Cursor | None:
        # No model to read the position's field from: paginate_sequence reads it.
        return CursorPagination.decode_cursor(self, request)

    # DRF keeps a cursor's position as the text read from the query (its stubs say int).
    def get_next_link(self) -> str | None:
        if self._next_key is None:
            return None
        return self.encode_cursor(Cursor(offset=0, reverse=False,
                                         position=_position_text(self._next_key)))  # type: ignore[arg-type]

    def get_previous_link(self) -> str | None:
        if self._previous_key is None:
            return None
        return self.encode_cursor(Cursor(offset=0, reverse=True,
                                         position=_position_text(self._previous_key)))  # type: ignore[arg-type]


def _position_text(key: SequenceKey) -> str:
    return f"{key[0]}.{key[1]}"


def _sequence_position(raw: str) -> SequenceKey:
    """A cursor's position comes from the client: two bounded integers, or it is refused
    as any unreadable cursor is (404, not a 500)."""
    head, _, tail = raw.partition(".")
    if not (head.lstrip("-").isdigit() and tail.isdigit()) or len(raw) > 41:
        raise NotFound(CursorPagination.invalid_cursor_message)
    return int(head), int(tail)
