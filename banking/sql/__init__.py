"""The one source of each database function the banking tables use on PostgreSQL: one
`.sql` file per function, holding its live definition (`CREATE OR REPLACE FUNCTION`).

A change to a file comes with a new migration that loads it again (`functions_load`), so
that databases migrated before get it too; migrations older than the files keep the text
they ran. tests/banking/test_sql_functions.py holds the database to the files."""

from pathlib import Path
from typing import Any

DIRECTORY = Path(__file__).resolve().parent
# function name -> its file in this directory
FUNCTIONS = {
    "banking_ledger_post": "ledger_post.sql",
    "banking_entry_references_check": "entry_references_check.sql",
}


def function_source(name: str) -> str:
    return (DIRECTORY / FUNCTIONS[name]).read_text()


def functions_load(schema_editor: Any, *names: str) -> None:
    """Create or replace the named functions from their files (all when none is named);
    PostgreSQL only, the other databases having no functions."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in names or tuple(FUNCTIONS):
        schema_editor.execute(function_source(name), params=None)
