"""Database access below the ORM, for the few hot statements that need it."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import connection

_KEPT = "_suanli_server_bound_cursor"


@dataclass
class _KeptCursor:
    cursor: psycopg.Cursor[Any]
    busy: bool = False


@contextmanager
def server_bound_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """A PostgreSQL cursor on Django's connection that sends parameters apart from the
    SQL (Django's binds them into the text on the client): arrays of a thousand values
    travel as arrays, and `execute(..., prepare=True)` plans a statement once per
    connection. Database errors still come out as Django's (and mark the connection as
    Django does), and the connection's transaction is Django's.

    One cursor is kept per connection and handed out again: a new cursor finds its
    parameters' and columns' adapters anew, which was half the client's time of a single
    posting. A cursor asked for while the kept one is in use is a new one."""
    connection.ensure_connection()
    raw = connection.connection
    kept: _KeptCursor | None = getattr(connection, _KEPT, None)
    if kept is None or kept.cursor.connection is not raw or kept.cursor.closed:
        kept = _KeptCursor(psycopg.Cursor(raw))
        setattr(connection, _KEPT, kept)
    if kept.busy:
        with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            yield cursor
        return
    kept.busy = True
    try:
        with connection.wrap_database_errors:
            yield kept.cursor
    finally:
        kept.busy = False


def jsonb_value(value: Any) -> Any:
    """A jsonb column as read through `server_bound_cursor`: Django's connection has its
    loader hand jsonb over as text (JSONField decodes it), so raw reads decode it here."""
    return json.loads(value) if isinstance(value, str) else value
