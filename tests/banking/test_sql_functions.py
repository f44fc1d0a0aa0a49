"""The database functions are the files in banking/sql/: what PostgreSQL holds is what the
file says, normalised by PostgreSQL itself (the file's text created in a scratch schema
and both rendered by pg_get_functiondef)."""

import pytest
from django.db import connection, transaction

from banking.sql import FUNCTIONS, function_source

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql",
                                reason="database functions are PostgreSQL's")


def _definition(schema: str, name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s "
            "AND p.proname = %s", [schema, name])
        rows = cursor.fetchall()
    assert len(rows) == 1, f"{schema}.{name}: {len(rows)} definitions"
    return rows[0][0].replace(f"FUNCTION {schema}.", "FUNCTION ")


def _from_file(name: str) -> str:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA sql_file_check")
        cursor.execute("SET LOCAL search_path TO sql_file_check, public")
        cursor.execute(function_source(name))
        definition = _definition("sql_file_check", name)
        transaction.set_rollback(True)
    return definition


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_database_holds_the_file(name: str) -> None:
    assert _definition("public", name) == _from_file(name)


@pytest.mark.django_db
def test_the_ledger_function_keeps_to_index_probes() -> None:
    definition = _definition("public", "banking_ledger_post")
    assert "SET enable_seqscan TO 'off'" in definition
    assert "SET enable_bitmapscan TO 'off'" in definition
    assert "FOR NO KEY UPDATE OF a" in definition


@pytest.mark.django_db
def test_every_banking_function_has_a_file() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT p.proname FROM pg_proc p JOIN pg_namespace n "
                       "ON n.oid = p.pronamespace WHERE n.nspname = 'public' "
                       "AND p.proname LIKE 'banking\\_%%'")
        names = {row[0] for row in cursor.fetchall()}
    assert names == set(FUNCTIONS)


def test_a_changed_file_differs_from_the_database(db: None) -> None:
    """The comparison can fail: a file one word off is told apart."""
    source = function_source("banking_ledger_post").replace("FOR NO KEY UPDATE OF a",
                                                            "FOR UPDATE OF a")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA sql_file_check")
        cursor.execute("SET LOCAL search_path TO sql_file_check, public")
        cursor.execute(source)
        changed = _definition("sql_file_check", "banking_ledger_post")
        transaction.set_rollback(True)
    assert changed != _definition("public", "banking_ledger_post")
