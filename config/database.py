"""Database access below the ORM, for the few hot statements that need it."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection


@contextmanager
def server_bound_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """A PostgreSQL cursor on Django's connection that sends parameters apart from the
    SQL (Django's binds them into the text on the client): arrays of a thousand values
    travel as arrays, and `execute(..., prepare=True)` plans a statement once per
    connection. Database errors still come out as Django's (and mark the connection as
    Django does), and the connection's transaction is Django's."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor
