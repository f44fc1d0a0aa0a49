-- banking_entry_references_check: entries' references to their transfer and account,
-- checked once per INSERT statement over its new rows (the trigger entry_references,
-- migration 0012) instead of once per entry by foreign keys. Each distinct transfer and
-- account is looked up once, by an index probe: OFFSET 0 keeps a subquery from being
-- turned into a join or a hashed scan of the whole table, and the settings keep the plan,
-- made once per session, from being the one chosen while the tables were small.
CREATE OR REPLACE FUNCTION banking_entry_references_check() RETURNS trigger
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
