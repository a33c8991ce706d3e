package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// UsageWrite is one usage record as the reports endpoint writes it.
type UsageWrite struct {
	RequestID           string
	GrantID             string
	UserID              int64
	APIKeyID            int64
	GroupID             int64
	AccountID           int64 // 0 = no account (stored as NULL)
	Path                string
	Model               string
	UpstreamModel       string
	Stream              bool
	Status              int
	ErrorClass          string
	InputTokens         int64 // exclusive of cache tokens
	OutputTokens        int64
	CacheReadTokens     int64
	CacheCreationTokens int64
	CostMicros          int64
	DurationMs          int64
	FirstTokenMs        int64
	Attempts            int
	AttemptDetails      []byte // JSON array
}

const (
	// sqlInsertUsageBatch inserts a batch of records from parallel arrays, one per column, in
	// request_id order (concurrent batches that share records then lock them in the same
	// order). A record whose request_id is stored already is skipped; RETURNING names the
	// rows actually inserted, which are the only ones to charge.
	sqlInsertUsageBatch = `
INSERT INTO usage_records (request_id, grant_id, user_id, api_key_id, group_id, account_id,
    path, model, upstream_model, stream, status, error_class,
    input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, cost_micros,
    duration_ms, first_token_ms, attempts, attempt_details)
SELECT t.request_id, t.grant_id, t.user_id, t.api_key_id, t.group_id, NULLIF(t.account_id, 0),
    t.path, t.model, t.upstream_model, t.stream, t.status, t.error_class,
    t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_creation_tokens, t.cost_micros,
    t.duration_ms, t.first_token_ms, t.attempts, t.attempt_details::jsonb
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
    $7::text[], $8::text[], $9::text[], $10::boolean[], $11::integer[], $12::text[],
    $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[],
    $18::bigint[], $19::bigint[], $20::integer[], $21::text[])
    AS t(request_id, grant_id, user_id, api_key_id, group_id, account_id,
    path, model, upstream_model, stream, status, error_class,
    input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, cost_micros,
    duration_ms, first_token_ms, attempts, attempt_details)
ORDER BY t.request_id
ON CONFLICT (request_id) DO NOTHING
RETURNING request_id, user_id, cost_micros`

	sqlChargeUser = `UPDATE users SET balance_micros = balance_micros - $2 WHERE id = $1`

	sqlGroupRate = `SELECT (rate_multiplier * 1000000)::bigint FROM groups WHERE id = $1`
)

// ErrGroupNotFound means no group has that id.
var ErrGroupNotFound = errors.New("group not found")

// WriteUsage inserts the usage record and charges its cost to the user's balance in one
// transaction. It is idempotent on RequestID: a repeated record is neither stored nor
// charged again, and inserted reports false.
func (s *Store) WriteUsage(ctx context.Context, u UsageWrite) (inserted bool, err error) {
	ins, err := s.WriteUsageBatch(ctx, []UsageWrite{u})
	if err != nil {
		return false, err
	}
	return ins[u.RequestID], nil
}

// WriteUsageBatch inserts a batch of usage records and charges their costs in one
// transaction: one multi-row INSERT … ON CONFLICT (request_id) DO NOTHING, then one UPDATE
// per charged user (in user id order, so concurrent batches cannot deadlock) for the rows
// actually inserted. It is idempotent on RequestID, within the batch (the first record of a
// request_id wins) and across batches: a repeated record is neither stored nor charged
// again. inserted holds the request ids stored by this call. Either everything is written
// or nothing is.
func (s *Store) WriteUsageBatch(ctx context.Context, batch []UsageWrite) (inserted map[string]bool, err error) {
	inserted = make(map[string]bool, len(batch))
	if len(batch) == 0 {
		return inserted, nil
	}
	cols := newUsageColumns(len(batch))
	seen := make(map[string]bool, len(batch))
	for i := range batch {
		if seen[batch[i].RequestID] {
			continue
		}
		seen[batch[i].RequestID] = true
		cols.add(&batch[i])
	}
	err = s.WithTx(ctx, func(tx pgx.Tx) error {
		charges := make(map[int64]int64)
		rows, err := tx.Query(ctx, sqlInsertUsageBatch, cols.args()...)
		if err != nil {
			return fmt.Errorf("inserting usage records: %w", err)
		}
		var (
			requestID  string
			user, cost int64
		)
		_, err = pgx.ForEachRow(rows, []any{&requestID, &user, &cost}, func() error {
			inserted[requestID] = true
			if cost != 0 {
				charges[user] += cost
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("inserting usage records: %w", err)
		}
		return chargeUsers(ctx, tx, charges)
	})
	if err != nil {
		return nil, fmt.Errorf("writing %d usage records: %w", len(batch), err)
	}
	return inserted, nil
}

// chargeUsers subtracts each user's total from the balance, in one pipelined round trip.
func chargeUsers(ctx context.Context, tx pgx.Tx, charges map[int64]int64) error {
	if len(charges) == 0 {
		return nil
	}
	users := make([]int64, 0, len(charges))
	for u := range charges {
		users = append(users, u)
	}
	slices.Sort(users)
	b := &pgx.Batch{}
	for _, u := range users {
		b.Queue(sqlChargeUser, u, charges[u])
	}
	br := tx.SendBatch(ctx, b)
	for _, u := range users {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("charging user %d: %w", u, err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("charging users: %w", err)
	}
	return nil
}

// usageColumns holds a batch as one slice per column, the shape unnest takes.
type usageColumns struct {
	requestID, grantID, path, model, upstreamModel, errorClass, details []string
	userID, apiKeyID, groupID, accountID                                []int64
	input, output, cacheRead, cacheCreation, cost, duration, firstToken []int64
	stream                                                              []bool
	status, attempts                                                    []int32
}

func newUsageColumns(n int) *usageColumns {
	return &usageColumns{
		requestID: make([]string, 0, n), grantID: make([]string, 0, n), path: make([]string, 0, n),
		model: make([]string, 0, n), upstreamModel: make([]string, 0, n), errorClass: make([]string, 0, n),
		details: make([]string, 0, n), userID: make([]int64, 0, n), apiKeyID: make([]int64, 0, n),
		groupID: make([]int64, 0, n), accountID: make([]int64, 0, n), input: make([]int64, 0, n),
		output: make([]int64, 0, n), cacheRead: make([]int64, 0, n), cacheCreation: make([]int64, 0, n),
		cost: make([]int64, 0, n), duration: make([]int64, 0, n), firstToken: make([]int64, 0, n),
		stream: make([]bool, 0, n), status: make([]int32, 0, n), attempts: make([]int32, 0, n),
	}
}

func (c *usageColumns) add(u *UsageWrite) {
	details := string(u.AttemptDetails)
	if details == "" {
		details = "[]"
	}
	c.requestID = append(c.requestID, u.RequestID)
	c.grantID = append(c.grantID, u.GrantID)
	c.userID = append(c.userID, u.UserID)
	c.apiKeyID = append(c.apiKeyID, u.APIKeyID)
	c.groupID = append(c.groupID, u.GroupID)
	c.accountID = append(c.accountID, u.AccountID)
	c.path = append(c.path, u.Path)
	c.model = append(c.model, u.Model)
	c.upstreamModel = append(c.upstreamModel, u.UpstreamModel)
	c.stream = append(c.stream, u.Stream)
	c.status = append(c.status, int32(u.Status))
	c.errorClass = append(c.errorClass, u.ErrorClass)
	c.input = append(c.input, u.InputTokens)
	c.output = append(c.output, u.OutputTokens)
	c.cacheRead = append(c.cacheRead, u.CacheReadTokens)
	c.cacheCreation = append(c.cacheCreation, u.CacheCreationTokens)
	c.cost = append(c.cost, u.CostMicros)
	c.duration = append(c.duration, u.DurationMs)
	c.firstToken = append(c.firstToken, u.FirstTokenMs)
	c.attempts = append(c.attempts, int32(u.Attempts))
	c.details = append(c.details, details)
}

// args are the parameters of sqlInsertUsageBatch, in its order.
func (c *usageColumns) args() []any {
	return []any{c.requestID, c.grantID, c.userID, c.apiKeyID, c.groupID, c.accountID,
		c.path, c.model, c.upstreamModel, c.stream, c.status, c.errorClass,
		c.input, c.output, c.cacheRead, c.cacheCreation, c.cost,
		c.duration, c.firstToken, c.attempts, c.details}
}

// GroupRateMicros returns a group's rate multiplier in fixed point (1.0 = 1_000_000).
func (s *Store) GroupRateMicros(ctx context.Context, groupID int64) (int64, error) {
	var r int64
	err := s.Pool.QueryRow(ctx, sqlGroupRate, groupID).Scan(&r)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrGroupNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("reading rate of group %d: %w", groupID, err)
	}
	return r, nil
}
