-- banking_ledger_post: the single-transfer form of the posting service in one round trip
-- (the idempotency check, the account locks in ascending id, the floor checks, the inserts
-- and the balance updates). The Python form in banking/services/ledger.py keeps the same
-- rules and is the reference; tests/banking/test_ledger_concurrency.py races both.
-- The accounts are locked FOR NO KEY UPDATE, the lock an UPDATE of a balance takes: it
-- serializes postings on an account without waiting for the KEY SHARE locks that
-- foreign-key checks take.
CREATE OR REPLACE FUNCTION banking_ledger_post(
    p_kind varchar, p_key varchar, p_hash varchar, p_reference varchar, p_memo varchar,
    p_reverses bigint, p_accounts bigint[], p_amounts bigint[], p_now timestamptz
) RETURNS TABLE (transfer_id bigint, outcome text, detail jsonb)
LANGUAGE plpgsql
-- Index probes only, whatever the planner thinks of the tables' sizes: the plan is made
-- once per session, and one made while the accounts table's statistics were stale
-- scanned every account to lock two.
SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE
    found_id bigint;
    found_hash varchar;
    acct record;
    wanted integer := 0;
    locked integer := 0;
    ids bigint[] := '{}';
    deltas bigint[] := '{}';
    short jsonb;
    missing bigint;
BEGIN
    SELECT t.id, t.request_hash INTO found_id, found_hash
      FROM banking_transfer t WHERE t.idempotency_key = p_key;
    IF found_id IS NOT NULL THEN
        RETURN QUERY SELECT found_id,
            CASE WHEN found_hash = p_hash THEN 'replayed' ELSE 'conflict' END, NULL::jsonb;
        RETURN;
    END IF;

    FOR acct IN
        SELECT a.id, a.purpose, a.balance, a.floor, d.delta, d.wanted
          FROM banking_account a
          JOIN (SELECT v.id, sum(v.amount) AS delta, count(*) OVER () AS wanted
                  FROM unnest(p_accounts, p_amounts) AS v(id, amount) GROUP BY v.id) d
            ON d.id = a.id
         ORDER BY a.id
           FOR NO KEY UPDATE OF a
    LOOP
        locked := locked + 1;
        wanted := acct.wanted;
        ids := ids || acct.id;
        deltas := deltas || acct.delta;
        IF short IS NULL AND acct.delta < 0 AND acct.floor IS NOT NULL
           AND acct.balance + acct.delta < acct.floor THEN
            short := jsonb_build_object('account', acct.purpose,
                                        'available', acct.balance - acct.floor,
                                        'needed', -acct.delta);
        END IF;
    END LOOP;

    IF locked = 0 OR locked < wanted THEN
        SELECT d.id INTO missing
          FROM (SELECT DISTINCT unnest(p_accounts) AS id) d
          LEFT JOIN banking_account a ON a.id = d.id WHERE a.id IS NULL
         ORDER BY d.id LIMIT 1;
        RETURN QUERY SELECT NULL::bigint, 'unknown_account', jsonb_build_object('account', missing);
        RETURN;
    END IF;
    IF short IS NOT NULL THEN
        RETURN QUERY SELECT NULL::bigint, 'insufficient_funds', short;
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

    UPDATE banking_account a SET balance = a.balance + u.delta, updated_at = p_now
      FROM unnest(ids, deltas) AS u(id, delta)
     WHERE a.id = u.id AND u.delta <> 0;

    RETURN QUERY SELECT found_id, 'posted', NULL::jsonb;
END;
$$;
