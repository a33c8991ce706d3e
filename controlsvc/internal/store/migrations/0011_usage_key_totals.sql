-- 0011: running totals of each key's usage, kept at settlement in the transaction that
-- inserts the records (store/usage_write_sql.go), so GET /v1/usage reads a bounded number of
-- rows instead of aggregating the key's records (docs/billing.md, "Usage API").
-- usage_key_totals holds a key's totals since its first record; usage_key_days its totals
-- per calendar day of the billing time zone (POOLGATE_BILLING_TIMEZONE at the time of the
-- write): "today" is one row, "this month" at most 31.
-- The backfill buckets existing records by the billing time zone the migrating controlsvc
-- runs with (the session setting poolgate.billing_timezone, set by store.Migrate; UTC when
-- absent).

CREATE TABLE usage_key_totals (
    api_key_id              BIGINT PRIMARY KEY,
    requests                BIGINT NOT NULL DEFAULT 0,
    input_tokens            BIGINT NOT NULL DEFAULT 0,
    output_tokens           BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens       BIGINT NOT NULL DEFAULT 0,
    cache_creation_tokens   BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens        BIGINT NOT NULL DEFAULT 0,
    cost_micros             BIGINT NOT NULL DEFAULT 0,
    input_cost_micros       BIGINT NOT NULL DEFAULT 0,
    output_cost_micros      BIGINT NOT NULL DEFAULT 0,
    cache_read_cost_micros  BIGINT NOT NULL DEFAULT 0,
    cache_write_cost_micros BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE usage_key_days (
    api_key_id              BIGINT NOT NULL,
    day                     DATE   NOT NULL, -- local date in the billing time zone
    requests                BIGINT NOT NULL DEFAULT 0,
    input_tokens            BIGINT NOT NULL DEFAULT 0,
    output_tokens           BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens       BIGINT NOT NULL DEFAULT 0,
    cache_creation_tokens   BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens        BIGINT NOT NULL DEFAULT 0,
    cost_micros             BIGINT NOT NULL DEFAULT 0,
    input_cost_micros       BIGINT NOT NULL DEFAULT 0,
    output_cost_micros      BIGINT NOT NULL DEFAULT 0,
    cache_read_cost_micros  BIGINT NOT NULL DEFAULT 0,
    cache_write_cost_micros BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (api_key_id, day)
);

INSERT INTO usage_key_totals (api_key_id, requests, input_tokens, output_tokens, cache_read_tokens,
    cache_creation_tokens, reasoning_tokens, cost_micros, input_cost_micros, output_cost_micros,
    cache_read_cost_micros, cache_write_cost_micros)
SELECT api_key_id, count(*), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
    sum(cache_creation_tokens), sum(reasoning_tokens), sum(cost_micros), sum(input_cost_micros),
    sum(output_cost_micros), sum(cache_read_cost_micros), sum(cache_write_cost_micros)
FROM usage_records
GROUP BY api_key_id;

INSERT INTO usage_key_days (api_key_id, day, requests, input_tokens, output_tokens, cache_read_tokens,
    cache_creation_tokens, reasoning_tokens, cost_micros, input_cost_micros, output_cost_micros,
    cache_read_cost_micros, cache_write_cost_micros)
SELECT api_key_id,
    (created_at AT TIME ZONE COALESCE(NULLIF(current_setting('poolgate.billing_timezone', true), ''), 'UTC'))::date,
    count(*), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
    sum(cache_creation_tokens), sum(reasoning_tokens), sum(cost_micros), sum(input_cost_micros),
    sum(output_cost_micros), sum(cache_read_cost_micros), sum(cache_write_cost_micros)
FROM usage_records
GROUP BY 1, 2;
