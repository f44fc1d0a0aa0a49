"""Hand-written SQL is composed from the models: every statement prepares against the
schema, every INSERT leaves out only columns the database fills, and no module that
writes SQL names a table or an enum value by hand."""

import importlib
import re
from pathlib import Path

import pytest
from django.apps import apps
from django.db import connection, models

from core.sql_names import INSERTS, STATEMENTS

SQL_MODULES = [
    "banking.services.ledger",
    "banking.services.ledger_checks",
    "banking.invariants",
    "scheduler.services.placement",
    "scheduler.services.nodes",
    "scheduler.services.agent",
    "scheduler.services.heartbeat_buffer",
    "scheduler.services.heartbeat_write",
]
for name in SQL_MODULES:
    importlib.import_module(name)


def _as_prepared(statement: str) -> str:
    """%(name)s and %s placeholders as $1, $2 ... (one number per name)."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        key = match.group(1) or f"#{len(numbers)}"
        numbers.setdefault(key, len(numbers) + 1)
        return f"${numbers[key]}"

    return re.sub(r"%\((\w+)\)s|%s", number, statement)


def test_statements_are_recorded():
    assert len(STATEMENTS) >= 9
    assert len({i.model for i in INSERTS}) >= 4


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statements")
@pytest.mark.parametrize("index", range(len(STATEMENTS)))
def test_each_statement_prepares_against_the_schema(index):
    statement = STATEMENTS[index]
    with connection.cursor() as cursor:
        cursor.execute(f"PREPARE sql_names_check AS {_as_prepared(statement)}".replace("%", "%%"))
        cursor.execute("DEALLOCATE sql_names_check")


@pytest.mark.parametrize("insert", INSERTS, ids=lambda i: f"{i.model.__name__}:{len(i.fields)}")
def test_an_insert_leaves_out_only_what_the_database_fills(insert):
    written = {insert.model._meta.get_field(f).column for f in insert.fields}
    left_out = [f for f in insert.model._meta.concrete_fields if f.column not in written]
    unfilled = [f.name for f in left_out
                if not (f.primary_key or f.null or f.has_db_default())]
    assert unfilled == []


def test_a_field_without_a_database_default_would_be_caught():
    """The rule above can fail: a NOT NULL field with only a Python default is unfilled."""
    field = models.BigIntegerField(default=0)
    assert not (field.primary_key or field.null or field.has_db_default())


def test_no_module_writes_a_table_or_an_enum_value_by_hand():
    tables = {m._meta.db_table for m in apps.get_models()}
    values = {str(v) for m in apps.get_models() for f in m._meta.concrete_fields
              if f.choices and m._meta.app_label in {"banking", "scheduler"}
              for v, _label in f.flatchoices}
    for name in SQL_MODULES:
        source = Path(importlib.import_module(name).__file__ or "").read_text()
        assert [t for t in tables if re.search(rf"\b{t}\b", source)] == [], name
        assert [v for v in values if re.search(rf"(=|<>|IN \()\s*'{v}'", source)] == [], name
