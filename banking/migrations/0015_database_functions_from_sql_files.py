"""The database functions from their one source each, banking/sql/*.sql: the same
definitions as migrations 0011-0013 left them, now read from the files (the planner
settings of 0013 written in the ledger function's definition)."""

from importlib import import_module

from django.db import migrations

from banking.sql import functions_load

LEDGER_POST_0011 = import_module("banking.migrations.0011_ledger_post_no_key_update_lock")
PROBES_ONLY_0013 = import_module("banking.migrations.0013_ledger_post_index_probes_only")
REFERENCES_0012 = import_module("banking.migrations.0012_entry_references_checked_per_statement")


def load(apps, schema_editor):  # type: ignore[no-untyped-def]
    functions_load(schema_editor)


def restore(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(LEDGER_POST_0011.CREATE)
    PROBES_ONLY_0013.probes_only(apps, schema_editor)
    check = REFERENCES_0012.CREATE.split("CREATE TRIGGER")[0]
    schema_editor.execute(check.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"),
                          params=None)


class Migration(migrations.Migration):
    dependencies = [('banking', '0014_outbound_webhooks')]
    operations = [migrations.RunPython(load, restore)]
