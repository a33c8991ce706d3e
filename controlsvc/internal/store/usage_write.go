package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// UsageWrite is one usage record as the reports endpoint writes it: the request as the
// client saw it, priced by the usage of the attempt that answered (the last), and every
// upstream attempt (docs/billing.md, "Ledger").
type UsageWrite struct {
	RequestID     string
	GrantID       string
	UserID        int64
	APIKeyID      int64
	GroupID       int64
	AccountID     int64 // the last attempt's account; 0 = none (stored as NULL)
	Path          string
	Model         string
	UpstreamModel string
	Stream        bool
	Status        int
	ErrorClass    string

	InputTokens         int64 // exclusive of cache tokens
	OutputTokens        int64 // including ReasoningTokens
	CacheReadTokens     int64
	CacheCreationTokens int64
	ReasoningTokens     int64 // part of OutputTokens, informational

	Priced               bool  // false: no price for the model, every cost is 0
	CostMicros           int64 // billed to the user; the sum of the four bucket costs
	InputCostMicros      int64
	OutputCostMicros     int64
	CacheReadCostMicros  int64
	CacheWriteCostMicros int64
	RateMicros           int64 // rate multiplier applied, fixed point (1.0 = 1_000_000)

	AdmissionMs  int64
	UpstreamMs   int64
	FirstTokenMs int64
	DurationMs   int64

	Attempts []AttemptWrite // in order; attempt numbers are the positions, from 1
}

// AttemptWrite is one upstream attempt of a request.
type AttemptWrite struct {
	AccountID           int64 // 0 = none (stored as NULL)
	Status              int   // upstream status; 0 when none came (transport error, deadline)
	ErrorClass          string
	InputTokens         int64
	OutputTokens        int64
	CacheReadTokens     int64
	CacheCreationTokens int64
	ReasoningTokens     int64
	CostMicros          int64 // list price × rate; added to the account's usage_cost_micros
	LatencyMs           int64
	FirstTokenMs        int64
}

const (
	// sqlWriteUsageBatch inserts a batch of records, and the attempts of the records it
	// inserted, from parallel arrays (the shape unnest takes), in request_id order so that
	// concurrent batches sharing records lock them in the same order. A record whose
	// request_id is stored already is skipped with its attempts; an attempt already stored is
	// skipped too. It answers one row: the request ids inserted, and the cost of the
	// inserted attempts per account (ascending account id) to add to the accounts.
	sqlWriteUsageBatch = `
WITH ins AS (
    INSERT INTO usage_records (request_id, grant_id, user_id, api_key_id, group_id, account_id,
        path, model, upstream_model, stream, status, error_class,
        input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
        priced, cost_micros, input_cost_micros, output_cost_micros, cache_read_cost_micros,
        cache_write_cost_micros, rate_micros,
        admission_ms, upstream_ms, first_token_ms, duration_ms, attempts)
    SELECT t.request_id, t.grant_id, t.user_id, t.api_key_id, t.group_id, NULLIF(t.account_id, 0),
        t.path, t.model, t.upstream_model, t.stream, t.status, t.error_class,
        t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_creation_tokens, t.reasoning_tokens,
        t.priced, t.cost_micros, t.input_cost_micros, t.output_cost_micros, t.cache_read_cost_micros,
        t.cache_write_cost_micros, t.rate_micros,
        t.admission_ms, t.upstream_ms, t.first_token_ms, t.duration_ms, t.attempts
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
        $7::text[], $8::text[], $9::text[], $10::boolean[], $11::integer[], $12::text[],
        $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[],
        $18::boolean[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[],
        $23::bigint[], $24::bigint[],
        $25::bigint[], $26::bigint[], $27::bigint[], $28::bigint[], $29::integer[])
        AS t(request_id, grant_id, user_id, api_key_id, group_id, account_id,
        path, model, upstream_model, stream, status, error_class,
        input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
        priced, cost_micros, input_cost_micros, output_cost_micros, cache_read_cost_micros,
        cache_write_cost_micros, rate_micros,
        admission_ms, upstream_ms, first_token_ms, duration_ms, attempts)
    ORDER BY t.request_id
    ON CONFLICT (request_id) DO NOTHING
    RETURNING request_id
), att AS (
    INSERT INTO usage_attempts (request_id, attempt, account_id, status, error_class,
        input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
        cost_micros, latency_ms, first_token_ms)
    SELECT a.request_id, a.attempt, NULLIF(a.account_id, 0), a.status, a.error_class,
        a.input_tokens, a.output_tokens, a.cache_read_tokens, a.cache_creation_tokens, a.reasoning_tokens,
        a.cost_micros, a.latency_ms, a.first_token_ms
    FROM unnest($30::text[], $31::integer[], $32::bigint[], $33::integer[], $34::text[],
        $35::bigint[], $36::bigint[], $37::bigint[], $38::bigint[], $39::bigint[],
        $40::bigint[], $41::bigint[], $42::bigint[])
        AS a(request_id, attempt, account_id, status, error_class,
        input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
        cost_micros, latency_ms, first_token_ms)
    WHERE a.request_id IN (SELECT request_id FROM ins)
    ORDER BY a.request_id, a.attempt
    ON CONFLICT (request_id, attempt) DO NOTHING
    RETURNING account_id, cost_micros
), acc AS (
    SELECT account_id, sum(cost_micros)::bigint AS cost_micros
    FROM att
    WHERE account_id IS NOT NULL AND cost_micros <> 0
    GROUP BY account_id
)
SELECT ARRAY(SELECT request_id FROM ins),
       ARRAY(SELECT account_id FROM acc ORDER BY account_id),
       ARRAY(SELECT cost_micros FROM acc ORDER BY account_id)`

	// sqlRecordSettlements stores how the inserted records were charged, when that is not
	// the columns' defaults (balance mode, no subscription, nothing reserved).
	sqlRecordSettlements = `
UPDATE usage_records r
SET billing_mode = t.billing_mode, subscription_id = NULLIF(t.subscription_id, 0),
    reserved_micros = t.reserved_micros
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
    AS t(request_id, billing_mode, subscription_id, reserved_micros)
WHERE r.request_id = t.request_id`

	sqlAddAccountCost = `UPDATE accounts SET usage_cost_micros = usage_cost_micros + $2 WHERE id = $1`

	// sqlRates is the rate of each user × group pair: the user's own rate in the group, else
	// the group's. Pairs whose group does not exist are left out.
	sqlRates = `
SELECT t.user_id, t.group_id, (COALESCE(r.rate_multiplier, g.rate_multiplier) * 1000000)::bigint
FROM unnest($1::bigint[], $2::bigint[]) AS t(user_id, group_id)
JOIN groups g ON g.id = t.group_id
LEFT JOIN user_group_rates r ON r.user_id = t.user_id AND r.group_id = t.group_id`
)

// ErrGroupNotFound means no group has that id.
var ErrGroupNotFound = errors.New("group not found")

// WriteUsage writes one record as WriteUsageBatch does; inserted is false for a replay.
func (s *Store) WriteUsage(ctx context.Context, u UsageWrite) (inserted bool, err error) {
	ins, err := s.WriteUsageBatch(ctx, []UsageWrite{u})
	if err != nil {
		return false, err
	}
	return ins[u.RequestID], nil
}

// WriteUsageBatch writes a batch of usage records in one transaction:
//
//  1. one statement inserts the records (ON CONFLICT (request_id) DO NOTHING) and the
//     attempts of the records it inserted (ON CONFLICT (request_id, attempt) DO NOTHING);
//  2. every inserted record is settled (SettleInTx), in (user id, request id) order so that
//     concurrent batches lock users in the same order;
//  3. one pipelined round trip stores how each was charged and adds the inserted attempts'
//     costs to their accounts (ascending account id, for the same reason).
//
// It is idempotent on RequestID within the batch (the first record of a request_id wins)
// and across batches: a replayed record inserts nothing and charges nothing. inserted holds
// the request ids stored by this call. Either everything is written or nothing is.
func (s *Store) WriteUsageBatch(ctx context.Context, batch []UsageWrite) (inserted map[string]bool, err error) {
	inserted = make(map[string]bool, len(batch))
	if len(batch) == 0 {
		return inserted, nil
	}
	byID := make(map[string]*UsageWrite, len(batch))
	cols := newUsageColumns(len(batch))
	for i := range batch {
		u := &batch[i]
		if _, dup := byID[u.RequestID]; dup {
			continue
		}
		byID[u.RequestID] = u
		cols.add(u)
	}
	err = s.WithTx(ctx, func(tx pgx.Tx) error {
		var ids []string
		var accounts, costs []int64
		if err := tx.QueryRow(ctx, sqlWriteUsageBatch, cols.args()...).Scan(&ids, &accounts, &costs); err != nil {
			return fmt.Errorf("inserting usage records: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		writes := make([]*UsageWrite, 0, len(ids))
		for _, id := range ids {
			inserted[id] = true
			writes = append(writes, byID[id])
		}
		slices.SortFunc(writes, func(a, b *UsageWrite) int {
			if a.UserID != b.UserID {
				return cmpInt64(a.UserID, b.UserID)
			}
			return strings.Compare(a.RequestID, b.RequestID)
		})
		b := &pgx.Batch{}
		if err := settleAll(ctx, tx, writes, b); err != nil {
			return err
		}
		for i, a := range accounts {
			b.Queue(sqlAddAccountCost, a, costs[i])
		}
		if b.Len() == 0 {
			return nil
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("recording settlements and account costs: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("writing %d usage records: %w", len(batch), err)
	}
	return inserted, nil
}

// settleAll settles the inserted records in the given order and queues on b the last
// record's charge and the update that records the settlements differing from the columns'
// defaults. It is SettleInTx for each record, pipelined: each round trip carries the
// previous record's charge followed by the next record's locks and reads, so the users'
// row locks are held for one round trip per record instead of two (every reservation of
// those users waits for them). The statements and their order are SettleInTx's.
func settleAll(ctx context.Context, tx pgx.Tx, writes []*UsageWrite, b *pgx.Batch) error {
	var reqIDs, modes []string
	var subs, reserved []int64
	pending, pendingID := &pgx.Batch{}, "" // the previous record's charge, not yet sent
	for i, u := range writes {
		in := Settlement{RequestID: u.RequestID, UserID: u.UserID, APIKeyID: u.APIKeyID,
			GroupID: u.GroupID, CostMicros: u.CostMicros}
		now := time.Now()
		st, err := sendSettleReads(ctx, tx, pending, pendingID, in, now)
		if err != nil {
			return err
		}
		pending, pendingID = &pgx.Batch{}, in.RequestID
		if i == len(writes)-1 {
			pending = b // the last charge goes out with the caller's batch
		}
		res := queueSettleWrites(pending, in, st, now, billing.Location())
		mode := res.BillingMode
		if mode == "" {
			mode = defaultBillingMode
		}
		var sub int64
		if res.SubscriptionID != nil {
			sub = *res.SubscriptionID
		}
		if mode == defaultBillingMode && sub == 0 && res.ReservedMicros == 0 {
			continue
		}
		reqIDs = append(reqIDs, u.RequestID)
		modes = append(modes, mode)
		subs = append(subs, sub)
		reserved = append(reserved, res.ReservedMicros)
	}
	if len(reqIDs) > 0 {
		b.Queue(sqlRecordSettlements, reqIDs, modes, subs, reserved)
	}
	return nil
}

// sendSettleReads sends the charge queued on pending (of request pendingID) and then the
// locks and reads of in's settlement, in one round trip.
func sendSettleReads(ctx context.Context, tx pgx.Tx, pending *pgx.Batch, pendingID string, in Settlement, now time.Time) (*settleRows, error) {
	charges := pending.Len()
	queueSettleReads(pending, in, now)
	br := tx.SendBatch(ctx, pending)
	var err error
	for i := 0; i < charges && err == nil; i++ {
		if _, err = br.Exec(); err != nil {
			err = fmt.Errorf("settling request %s: charging: %w", pendingID, err)
		}
	}
	var st *settleRows
	if err == nil {
		if st, err = scanSettleRows(br); err != nil {
			err = fmt.Errorf("settling request %s: %w", in.RequestID, err)
		}
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("settling request %s: %w", in.RequestID, cerr)
	}
	return st, err
}

// defaultBillingMode is usage_records.billing_mode's default.
const defaultBillingMode = BillingBalance

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// UserGroup is a user in a group, the key of a rate.
type UserGroup struct {
	UserID  int64
	GroupID int64
}

// RatesMicros returns the rate multiplier of each pair in fixed point (1.0 = 1_000_000):
// the user's override in the group (user_group_rates), else the group's rate. Pairs whose
// group does not exist are missing from the map. One round trip for any number of pairs.
func (s *Store) RatesMicros(ctx context.Context, pairs []UserGroup) (map[UserGroup]int64, error) {
	out := make(map[UserGroup]int64, len(pairs))
	if len(pairs) == 0 {
		return out, nil
	}
	users := make([]int64, len(pairs))
	groups := make([]int64, len(pairs))
	for i, p := range pairs {
		users[i], groups[i] = p.UserID, p.GroupID
	}
	rows, err := s.Pool.Query(ctx, sqlRates, users, groups)
	if err != nil {
		return nil, fmt.Errorf("reading rates: %w", err)
	}
	var (
		p    UserGroup
		rate int64
	)
	_, err = pgx.ForEachRow(rows, []any{&p.UserID, &p.GroupID, &rate}, func() error {
		out[p] = rate
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading rates: %w", err)
	}
	return out, nil
}
