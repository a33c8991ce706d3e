-- 0021: the ledger is partitioned by month (docs/design.md, "Ledger partitions"), so an old
-- month is dropped or archived as one table without touching the current one.
-- usage_records and usage_attempts are partitioned by RANGE (created_at), one partition per
-- UTC calendar month (usage_records_pYYYYMM, usage_attempts_pYYYYMM), plus a DEFAULT
-- partition each so that an insert never fails when controlsvc did not create a month in
-- time (poolgate_ensure_usage_month moves such rows into their month when it creates it).
-- A unique constraint of a partitioned table must hold the partition key, and a report's
-- retry carries no time of its own, so idempotency on request_id alone moves to
-- usage_request_ids: one narrow, unpartitioned row per stored record, keyed by request_id,
-- carrying the record's created_at (its partition). The writer inserts there first, ON
-- CONFLICT DO NOTHING, and stores only the records whose id it inserted.
-- A record and its attempts share created_at (the writing transaction's now()), so they
-- live in the same month and are dropped together.
-- The existing rows are copied into the partitions once: this migration rewrites the
-- ledger (as long as copying it takes).

CREATE TABLE usage_request_ids (
    request_id TEXT        PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL -- usage_records.created_at of the request's record
);

-- poolgate_ensure_usage_month creates the partitions of both ledger tables for the UTC
-- month holding month, if missing, and answers how many it created. Rows of that month in
-- a DEFAULT partition are moved into the new partition first (a partition cannot be added
-- over rows of the default that it would hold). Concurrent callers (every controlsvc)
-- serialise on an advisory lock.
CREATE FUNCTION poolgate_ensure_usage_month(month timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    lo_utc  timestamp   := date_trunc('month', month AT TIME ZONE 'UTC');
    lo      timestamptz := lo_utc AT TIME ZONE 'UTC';
    hi      timestamptz := (lo_utc + interval '1 month') AT TIME ZONE 'UTC';
    parent  text;
    part    text;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7372806246593311265); -- "ledger partitions"
    FOREACH parent IN ARRAY ARRAY['usage_records', 'usage_attempts'] LOOP
        part := parent || '_p' || to_char(lo_utc, 'YYYYMM');
        CONTINUE WHEN to_regclass(part) IS NOT NULL;
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
        EXECUTE format('WITH moved AS (DELETE FROM %I WHERE created_at >= $1 AND created_at < $2 RETURNING *)
            INSERT INTO %I SELECT * FROM moved', parent || '_default', part) USING lo, hi;
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
        created := created + 1;
    END LOOP;
    RETURN created;
END $$;

-- The old tables step aside; their rows are copied below.
ALTER TABLE usage_records RENAME TO usage_records_unpartitioned;
ALTER TABLE usage_attempts RENAME TO usage_attempts_unpartitioned;
ALTER SEQUENCE usage_records_id_seq OWNED BY NONE;

CREATE TABLE usage_records (LIKE usage_records_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (created_at);
CREATE TABLE usage_records_default PARTITION OF usage_records DEFAULT;
CREATE TABLE usage_attempts (LIKE usage_attempts_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (created_at);
CREATE TABLE usage_attempts_default PARTITION OF usage_attempts DEFAULT;

-- Every month holding a row, up to two months ahead of now.
SELECT poolgate_ensure_usage_month(m AT TIME ZONE 'UTC')
FROM generate_series(
    date_trunc('month', COALESCE(LEAST(
        (SELECT min(created_at) FROM usage_records_unpartitioned),
        (SELECT min(created_at) FROM usage_attempts_unpartitioned)), now()) AT TIME ZONE 'UTC'),
    date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months',
    interval '1 month') AS m;

-- LIKE keeps the column order, so SELECT * lines up.
INSERT INTO usage_records SELECT * FROM usage_records_unpartitioned;
INSERT INTO usage_attempts SELECT * FROM usage_attempts_unpartitioned;
INSERT INTO usage_request_ids (request_id, created_at)
SELECT request_id, created_at FROM usage_records_unpartitioned;

DROP TABLE usage_records_unpartitioned;
DROP TABLE usage_attempts_unpartitioned;
ALTER SEQUENCE usage_records_id_seq OWNED BY usage_records.id;

-- The indexes are built after the copy (cheaper), on every partition at once. request_id
-- is indexed, not unique: usage_request_ids is the unique key.
ALTER TABLE usage_records ADD PRIMARY KEY (id, created_at);
CREATE INDEX usage_records_request_idx ON usage_records (request_id);
CREATE INDEX usage_records_user_idx    ON usage_records (user_id, id);
CREATE INDEX usage_records_key_idx     ON usage_records (api_key_id, id);
CREATE INDEX usage_records_account_idx ON usage_records (account_id, id);
CREATE INDEX usage_records_created_idx ON usage_records (created_at);
CREATE INDEX usage_records_group_idx   ON usage_records (group_id, id);
CREATE INDEX usage_records_model_idx   ON usage_records (model, id);

ALTER TABLE usage_attempts ADD PRIMARY KEY (request_id, attempt, created_at);
CREATE INDEX usage_attempts_account_idx ON usage_attempts (account_id, created_at);

-- Dropping a month deletes its ids by time.
CREATE INDEX usage_request_ids_created_idx ON usage_request_ids (created_at);
