"""The kept cursor of core.database: handed out again on the same connection, never
to two users at once, and not past a reconnection."""

import pytest
from django.db import connection

from core.database import server_bound_cursor

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a psycopg cursor on PostgreSQL"
)


def test_the_same_cursor_serves_one_statement_after_another(db):
    with server_bound_cursor() as first:
        first.execute("SELECT 1")
    with server_bound_cursor() as second:
        second.execute("SELECT 2")
        assert second.fetchone() == (2,)
    assert second is first


def test_a_cursor_asked_for_while_the_kept_one_is_in_use_is_another(db):
    with server_bound_cursor() as outer:
        outer.execute("SELECT generate_series(1, 3)")
        with server_bound_cursor() as inner:
            inner.execute("SELECT 42")
            assert inner.fetchone() == (42,)
        assert inner is not outer
        assert outer.fetchall() == [(1,), (2,), (3,)]


@pytest.mark.django_db(transaction=True)
def test_a_new_connection_gets_a_new_cursor():
    with server_bound_cursor() as before:
        before.execute("SELECT 1")
    connection.close()
    with server_bound_cursor() as after:
        after.execute("SELECT 7")
        assert after.fetchone() == (7,)
    assert after is not before
