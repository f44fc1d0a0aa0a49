"""Every list of the API is paged by keyset (a cursor), not by OFFSET: a page is found
by an index walk from where the last one ended, whatever its depth, and no page counts
the whole set (no COUNT(*)). Rows inserted meanwhile never shift a page, so a reader
walking `next` sees no row twice and skips none that existed when they started."""

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

