"""The single-transfer form of the posting service as one PostgreSQL function: the
idempotency check, the locks (ascending account id), the floor checks, the inserts and
the balance updates in one round trip. The Python form (services/ledger.py) stays the
reference and serves SQLite; both keep the same rules."""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION banking_ledger_post(
    p_kind varchar, p_key varchar, p_hash varchar, p_reference varchar, p_memo varchar,
    p_reverses bigint, p_accounts bigint[], p_amounts bigint[], p_now timestamptz
) RETURNS TABLE (transfer_id bigint, outcome text, detail jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    found_id bigint;
    found_hash varchar;
    short record;
    missing bigint;
BEGIN
    SELECT t.id, t.request_hash INTO found_id, found_hash
      FROM banking_transfer t WHERE t.idempotency_key = p_key;
    IF found_id IS NOT NULL THEN
        RETURN QUERY SELECT found_id,
            CASE WHEN found_hash = p_hash THEN 'replayed' ELSE 'conflict' END, NULL::jsonb;
        RETURN;
    END IF;

    PERFORM 1 FROM banking_account a
      WHERE a.id = ANY(p_accounts) ORDER BY a.id FOR UPDATE;

    SELECT d.id INTO missing
      FROM (SELECT DISTINCT unnest(p_accounts) AS id) d
      LEFT JOIN banking_account a ON a.id = d.id WHERE a.id IS NULL LIMIT 1;
    IF missing IS NOT NULL THEN
        RETURN QUERY SELECT NULL::bigint, 'unknown_account', jsonb_build_object('account', missing);
        RETURN;
    END IF;

    SELECT a.purpose, a.balance - a.floor AS available, -d.delta AS needed INTO short
      FROM (SELECT v.id, sum(v.amount) AS delta
              FROM unnest(p_accounts, p_amounts) AS v(id, amount) GROUP BY v.id) d
      JOIN banking_account a ON a.id = d.id
     WHERE d.delta < 0 AND a.floor IS NOT NULL AND a.balance + d.delta < a.floor
     ORDER BY a.id LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT NULL::bigint, 'insufficient_funds',
            jsonb_build_object('account', short.purpose, 'available', short.available,
                               'needed', short.needed);
        RETURN;
    END IF;

    INSERT INTO banking_transfer (kind, idempotency_key, request_hash, reference, memo,
                                  reverses_id, created_at)
    VALUES (p_kind, p_key, p_hash, p_reference, p_memo, p_reverses, p_now)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO found_id;
    IF found_id IS NULL THEN
        -- A twin with the same key committed while this one waited for the locks.
        SELECT t.id, t.request_hash INTO found_id, found_hash
          FROM banking_transfer t WHERE t.idempotency_key = p_key;
        RETURN QUERY SELECT found_id,
            CASE WHEN found_hash = p_hash THEN 'replayed' ELSE 'conflict' END, NULL::jsonb;
        RETURN;
    END IF;

    INSERT INTO banking_entry (transfer_id, account_id, amount)
    SELECT found_id, v.id, v.amount FROM unnest(p_accounts, p_amounts) AS v(id, amount);

    UPDATE banking_account a SET balance = a.balance + d.delta, updated_at = p_now
      FROM (SELECT v.id, sum(v.amount) AS delta
              FROM unnest(p_accounts, p_amounts) AS v(id, amount) GROUP BY v.id) d
     WHERE a.id = d.id AND d.delta <> 0;

    RETURN QUERY SELECT found_id, 'posted', NULL::jsonb;
END;
$$;
"""

DROP = "DROP FUNCTION IF EXISTS banking_ledger_post(varchar, varchar, varchar, varchar, varchar, bigint, bigint[], bigint[], timestamptz);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("banking", "0004_payments")]
    operations = [migrations.RunPython(create, drop)]
