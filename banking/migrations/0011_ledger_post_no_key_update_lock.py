"""banking_ledger_post locks its accounts FOR NO KEY UPDATE, the lock an UPDATE of a
balance takes: it still serializes postings on an account, and no longer waits for the
KEY SHARE locks that foreign-key checks of entries take (a batch checks its entries' keys
before it locks its accounts; see banking.services.ledger._post_fresh_batch)."""

from importlib import import_module

from django.db import migrations

PREVIOUS = import_module("banking.migrations.0008_ledger_post_one_lock_pass").CREATE
# The same function as migration 0008 but for the lock it takes.
CREATE = PREVIOUS.replace("FOR UPDATE OF a", "FOR NO KEY UPDATE OF a")
assert CREATE.count("FOR NO KEY UPDATE OF a") == 1


def create(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def restore(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS)


class Migration(migrations.Migration):
    dependencies = [("banking", "0010_transfer_keys_and_reversals_one_index_each")]
    operations = [migrations.RunPython(create, restore)]
