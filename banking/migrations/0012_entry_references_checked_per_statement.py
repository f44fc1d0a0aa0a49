"""Entries' references to their transfer and account are checked once per INSERT
statement, by a trigger over the statement's new rows, instead of by foreign keys, which
check (and lock) the referenced row once per entry: 4,000 checks for a batch of 1,000
transfers, ~40 % of the batch form's time. Nothing it names can disappear meanwhile:
transfers and accounts are never deleted nor renumbered (their triggers refuse it). No
row trigger sees TRUNCATE, which can now empty the accounts table from under its entries
(as it can empty the append-only tables themselves): `verify_ledger` reports entries that
name a transfer or account that is gone.
"""

import django.db.models.deletion
import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models


# Each distinct transfer and account of the statement is looked up once (a batch of 1,000
# transfers into one revenue account names ~1,000 transfers and a few hundred accounts in
# its 2,000 entries), by an index probe, whatever the planner thinks of the tables'
# sizes: OFFSET 0 keeps a subquery from being turned into a join or a hashed scan of the
# whole table, and the plan, made once per session, would otherwise stay the one chosen
# while the tables were small.
CREATE = r"""
CREATE FUNCTION banking_entry_references_check() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off SET enable_bitmapscan = off AS $$
DECLARE
    missing bigint;
BEGIN
    SELECT e.transfer_id INTO missing FROM (SELECT DISTINCT transfer_id FROM new_entries) e
     WHERE NOT EXISTS (SELECT 1 FROM banking_transfer t WHERE t.id = e.transfer_id OFFSET 0)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'banking_entry_transfer_id: transfer % does not exist', missing
            USING ERRCODE = 'foreign_key_violation', TABLE = 'banking_entry',
                  CONSTRAINT = 'entry_transfer_exists';
    END IF;
    SELECT e.account_id INTO missing FROM (SELECT DISTINCT account_id FROM new_entries) e
     WHERE NOT EXISTS (SELECT 1 FROM banking_account a WHERE a.id = e.account_id OFFSET 0)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'banking_entry_account_id: account % does not exist', missing
            USING ERRCODE = 'foreign_key_violation', TABLE = 'banking_entry',
                  CONSTRAINT = 'entry_account_exists';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER entry_references AFTER INSERT ON banking_entry
    REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT
    EXECUTE FUNCTION banking_entry_references_check();
"""

DROP = """
DROP TRIGGER entry_references ON banking_entry;
DROP FUNCTION banking_entry_references_check();
"""


def create(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("banking", "0011_ledger_post_no_key_update_lock"),
    ]

    operations = [
        migrations.RunPython(create, drop),
        migrations.AlterField(
            model_name="entry",
            name="account",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="entries",
                to="banking.account",
            ),
        ),
        migrations.AlterField(
            model_name="entry",
            name="transfer",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="entries",
                to="banking.transfer",
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="account",
            trigger=pgtrigger.compiler.Trigger(
                name="account_never_deleted",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'pgtrigger: Cannot delete rows from % table', TG_TABLE_NAME;",
                    hash="7492e60c69f235f053e23cf48a5857baf5c7a2f8",
                    operation="DELETE",
                    pgid="pgtrigger_account_never_deleted_f1d0d",
                    table="banking_account",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="account",
            trigger=pgtrigger.compiler.Trigger(
                name="account_id_fixed",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition='WHEN (OLD."id" IS DISTINCT FROM (NEW."id"))',
                    func="RAISE EXCEPTION 'pgtrigger: Cannot update rows from % table', TG_TABLE_NAME;",
                    hash="dad3af85b864df23e61f0418cdc44837d9821a7e",
                    operation="UPDATE",
                    pgid="pgtrigger_account_id_fixed_732ff",
                    table="banking_account",
                    when="BEFORE",
                ),
            ),
        ),
    ]
