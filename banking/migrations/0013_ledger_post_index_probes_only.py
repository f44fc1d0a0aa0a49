"""banking_ledger_post reaches its accounts by index probes only, whatever the planner
thinks of the accounts table's size. Its plans are made once per session: made while the
table's statistics were stale (a fresh or fast-grown table, before autovacuum's ANALYZE),
the account lock read every account (a sequential scan and hash join: 8,000 accounts,
1.1 ms of a 1.7 ms posting) for the two it locks. The same trap, and the same cure, as
the entry references check of migration 0012."""

from django.db import migrations

SIGNATURE = ("banking_ledger_post(varchar, varchar, varchar, varchar, varchar, bigint, "
             "bigint[], bigint[], timestamptz)")


def probes_only(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER FUNCTION {SIGNATURE} SET enable_seqscan = off")
        schema_editor.execute(f"ALTER FUNCTION {SIGNATURE} SET enable_bitmapscan = off")


def planner_decides(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER FUNCTION {SIGNATURE} RESET ALL")


class Migration(migrations.Migration):
    dependencies = [("banking", "0012_entry_references_checked_per_statement")]
    operations = [migrations.RunPython(probes_only, planner_decides)]
