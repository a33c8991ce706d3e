package store

// The statements of WriteUsageBatch (usage_write.go).

var (
	// sqlWriteUsageBatch inserts a batch of records, and the attempts of the records it
	// inserted, from parallel arrays (the shape unnest takes), in request_id order so that
	// concurrent batches sharing records lock them in the same order. A record whose
	// request_id holds a Redis hold ($53–$56, read by the caller) of another user, key or
	// group is refused: neither it nor its attempts are inserted, and the hold is left alone
	// (docs/billing.md, "Reserve, then settle"). A record whose
	// request_id is stored already is skipped with its attempts; an attempt already stored is
	// skipped too. It answers one row: the request ids inserted, the cost of the inserted
	// attempts per account (ascending account id) to add to the accounts, the refused
	// request ids with their hold's user, key and group, and the request ids refused
	// for having no grant ($45 set). $47 is the records' routing explanations ('' = NULL), $48–$50
	// the attempts' breaker_open, hedge_lost and retried_same_account, $51 the served models
	// ('' = NULL) and $52 the warnings, each a JSON array of strings ('' = NULL: unnest would
	// flatten an array of arrays). Idempotency on request_id is usage_request_ids' (the ids
	// CTE): a record and its attempts take the created_at (the partition) of the id inserted. The inserted records are added to their keys' running
	// totals (usage_totals_sql.go, day buckets in the zone $46) in the same statement, so a
	// replayed record, which inserts nothing, adds nothing.
	sqlWriteUsageBatch = `
WITH t AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
        $7::text[], $8::text[], $9::text[], $10::boolean[], $11::integer[], $12::text[],
        $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[],
        $18::boolean[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[],
        $23::bigint[], $24::bigint[],
        $25::bigint[], $26::bigint[], $27::bigint[], $28::bigint[], $29::integer[], $43::text[], $47::text[],
        $51::text[], $52::text[])
        AS t(request_id, grant_id, user_id, api_key_id, group_id, account_id,
        path, model, upstream_model, stream, status, error_class,
        input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
        priced, cost_micros, input_cost_micros, output_cost_micros, cache_read_cost_micros,
        cache_write_cost_micros, rate_micros,
        admission_ms, upstream_ms, first_token_ms, duration_ms, attempts, usage_source, routing,
        served_model, warnings)
), mis AS (
    -- the Redis holds the caller read ($53–$56)
    SELECT t.request_id, r.user_id, r.api_key_id, r.group_id
    FROM t JOIN unnest($53::text[], $54::bigint[], $55::bigint[], $56::bigint[])
                AS r(request_id, user_id, api_key_id, group_id) ON r.request_id = t.request_id
    WHERE (r.user_id, r.api_key_id, r.group_id) IS DISTINCT FROM (t.user_id, t.api_key_id, t.group_id)
), unk AS (
    -- With $45 (the reports endpoint), a record of a request that has no grant is refused:
    -- no hold (every first admission makes one), not granted without one ($57) and no
    -- record stored already (a replayed batch). A report cannot settle a request
    -- controlsvc never admitted.
    SELECT t.request_id FROM t
    WHERE $45::boolean
      AND NOT (t.request_id = ANY($53::text[])) AND NOT (t.request_id = ANY($57::text[]))
      AND NOT EXISTS (SELECT 1 FROM usage_request_ids u WHERE u.request_id = t.request_id)
), ids AS (
    -- The unique key of the partitioned ledger (migration 0021): a request id stored already,
    -- in whatever month, inserts nothing here, so its record and attempts are skipped.
    INSERT INTO usage_request_ids (request_id, created_at)
    SELECT t.request_id, now() FROM t
    WHERE t.request_id NOT IN (SELECT request_id FROM mis) AND t.request_id NOT IN (SELECT request_id FROM unk)
    ORDER BY t.request_id
    ON CONFLICT (request_id) DO NOTHING
    RETURNING request_id, created_at
), ins AS (
    INSERT INTO usage_records (request_id, grant_id, user_id, api_key_id, group_id, account_id,
        path, model, upstream_model, stream, status, error_class,
        input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
        priced, cost_micros, input_cost_micros, output_cost_micros, cache_read_cost_micros,
        cache_write_cost_micros, rate_micros,
        admission_ms, upstream_ms, first_token_ms, duration_ms, attempts, usage_source, routing,
        served_model, warnings, created_at)
    SELECT t.request_id, t.grant_id, t.user_id, t.api_key_id, t.group_id, NULLIF(t.account_id, 0),
        t.path, t.model, t.upstream_model, t.stream, t.status, t.error_class,
        t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_creation_tokens, t.reasoning_tokens,
        t.priced, t.cost_micros, t.input_cost_micros, t.output_cost_micros, t.cache_read_cost_micros,
        t.cache_write_cost_micros, t.rate_micros,
        t.admission_ms, t.upstream_ms, t.first_token_ms, t.duration_ms, t.attempts, t.usage_source,
        NULLIF(t.routing, '')::jsonb, NULLIF(t.served_model, ''),
        CASE WHEN t.warnings = '' THEN NULL ELSE ARRAY(
            SELECT w FROM jsonb_array_elements_text(t.warnings::jsonb) WITH ORDINALITY AS e(w, n) ORDER BY n) END,
        ids.created_at
    FROM t JOIN ids ON ids.request_id = t.request_id
    ORDER BY t.request_id
    RETURNING request_id, api_key_id, created_at, ` + keyTotalsColumnList + `
), ` + sqlAddKeyTotals("ins", "$46") + `, att AS (
    INSERT INTO usage_attempts (request_id, attempt, account_id, status, error_class,
        input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
        cost_micros, latency_ms, first_token_ms, usage_source,
        breaker_open, hedge_lost, retried_same_account, created_at)
    SELECT a.request_id, a.attempt, NULLIF(a.account_id, 0), a.status, a.error_class,
        a.input_tokens, a.output_tokens, a.cache_read_tokens, a.cache_creation_tokens, a.reasoning_tokens,
        a.cost_micros, a.latency_ms, a.first_token_ms, a.usage_source,
        a.breaker_open, a.hedge_lost, a.retried_same_account, ids.created_at
    FROM unnest($30::text[], $31::integer[], $32::bigint[], $33::integer[], $34::text[],
        $35::bigint[], $36::bigint[], $37::bigint[], $38::bigint[], $39::bigint[],
        $40::bigint[], $41::bigint[], $42::bigint[], $44::text[],
        $48::boolean[], $49::boolean[], $50::boolean[])
        AS a(request_id, attempt, account_id, status, error_class,
        input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
        cost_micros, latency_ms, first_token_ms, usage_source,
        breaker_open, hedge_lost, retried_same_account)
    JOIN ids ON ids.request_id = a.request_id
    ORDER BY a.request_id, a.attempt
    ON CONFLICT (request_id, attempt, created_at) DO NOTHING
    RETURNING account_id, cost_micros
), acc AS (
    SELECT account_id, sum(cost_micros)::bigint AS cost_micros
    FROM att
    WHERE account_id IS NOT NULL AND cost_micros <> 0
    GROUP BY account_id
)
SELECT ARRAY(SELECT request_id FROM ins),
       ARRAY(SELECT account_id FROM acc ORDER BY account_id),
       ARRAY(SELECT cost_micros FROM acc ORDER BY account_id),
       ARRAY(SELECT request_id FROM mis ORDER BY request_id),
       ARRAY(SELECT user_id FROM mis ORDER BY request_id),
       ARRAY(SELECT api_key_id FROM mis ORDER BY request_id),
       ARRAY(SELECT group_id FROM mis ORDER BY request_id),
       ARRAY(SELECT request_id FROM unk ORDER BY request_id)`
)

const (
	// sqlRecordSettlements stores how the inserted records were charged, when that is not
	// the columns' defaults (balance mode, no subscription, nothing reserved).
	sqlRecordSettlements = `
UPDATE usage_records r
SET billing_mode = t.billing_mode, subscription_id = NULLIF(t.subscription_id, 0),
    reserved_micros = t.reserved_micros
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
    AS t(request_id, billing_mode, subscription_id, reserved_micros)
WHERE r.request_id = t.request_id AND r.created_at = now()` // inserted by this transaction: its month only

	sqlAddAccountCost = `UPDATE accounts SET usage_cost_micros = usage_cost_micros + $2 WHERE id = $1`

	// sqlSetBreakerOpen flags attempts whose failure opened their breaker (SetBreakerOpen).
	sqlSetBreakerOpen = `
UPDATE usage_attempts a SET breaker_open = true
FROM unnest($1::text[], $2::integer[]) AS t(request_id, attempt)
WHERE a.request_id = t.request_id AND a.attempt = t.attempt`
)
