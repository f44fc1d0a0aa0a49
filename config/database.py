"""Database access below the ORM, for the few hot statements that need it."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection

_KEPT = "_suanli_server_bound_cursor"


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
    kept: list[Any] | None = getattr(connection, _KEPT, None)
    if kept is None or kept[0].connection is not raw or kept[0].closed:
        kept = [psycopg.Cursor(raw), False]
        setattr(connection, _KEPT, kept)
    if kept[1]:
        with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            yield cursor
        return
    kept[1] = True
    try:
        with connection.wrap_database_errors:
            yield kept[0]
    finally:
        kept[1] = False
