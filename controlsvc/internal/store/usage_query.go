package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bounds of a usage listing page.
const (
	DefaultUsageLimit = 100
	MaxUsageLimit     = 500
)

// UsageFilter selects usage records; zero fields do not filter.
type UsageFilter struct {
	UserID    int64
	APIKeyID  int64
	AccountID int64 // the account of the last attempt
	GroupID   int64
	Model     string    // the model the client asked for
	Status    int       // the HTTP status the client got
	From      time.Time // created at or after
	To        time.Time // created before
}

// UsageRecord is one finished client request.
type UsageRecord struct {
	ID                   int64
	RequestID            string
	UserID               int64
	APIKeyID             int64
	GroupID              int64
	AccountID            int64 // 0 when no account was reached
	Path                 string
	Model                string
	UpstreamModel        string
	ServedModel          *string  // the model a fallback served instead of Model; nil = Model
	Warnings             []string // what a converted request could not carry over; nil = none
	Stream               bool
	Status               int // HTTP status the client got
	ErrorClass           string
	InputTokens          int64 // exclusive of cache tokens
	OutputTokens         int64
	CacheReadTokens      int64
	CacheCreationTokens  int64
	ReasoningTokens      int64  // part of OutputTokens
	UsageSource          string // UsageUpstream | UsageEstimate
	Priced               bool
	CostMicros           int64
	InputCostMicros      int64
	OutputCostMicros     int64
	CacheReadCostMicros  int64
	CacheWriteCostMicros int64
	RateMicros           int64
	BillingMode          string
	SubscriptionID       *int64
	ReservedMicros       int64
	AdmissionMs          int64
	UpstreamMs           int64
	FirstTokenMs         int64
	DurationMs           int64
	Attempts             int
	CreatedAt            time.Time
}

// UsageAttempt is one upstream attempt of a request.
type UsageAttempt struct {
	Attempt             int
	AccountID           int64 // 0 when none
	Status              int
	ErrorClass          string
	InputTokens         int64
	OutputTokens        int64
	CacheReadTokens     int64
	CacheCreationTokens int64
	ReasoningTokens     int64
	UsageSource         string // UsageUpstream | UsageEstimate (the answering attempt billed by estimate)
	CostMicros          int64
	LatencyMs           int64
	FirstTokenMs        int64
	BreakerOpen         bool // its failure opened its (account, model) breaker
	HedgeLost           bool // cancelled because the other hedged attempt won
	RetriedSameAccount  bool // it failed and the next attempt went to the same account
	CreatedAt           time.Time
}

// UsagePage is one page of a listing, newest first. NextCursor is the cursor of the next
// page, 0 at the end.
type UsagePage struct {
	Records    []UsageRecord
	NextCursor int64
}

const usageColumnList = `id, request_id, user_id, api_key_id, group_id, COALESCE(account_id, 0), path, model,
    upstream_model, stream, status, error_class, input_tokens, output_tokens, cache_read_tokens,
    cache_creation_tokens, reasoning_tokens, priced, cost_micros, input_cost_micros, output_cost_micros,
    cache_read_cost_micros, cache_write_cost_micros, rate_micros, billing_mode, subscription_id,
    reserved_micros, admission_ms, upstream_ms, first_token_ms, duration_ms, attempts, created_at, usage_source,
    served_model, warnings`

func scanUsageRecord(r pgx.Row) (UsageRecord, error) {
	var u UsageRecord
	err := r.Scan(&u.ID, &u.RequestID, &u.UserID, &u.APIKeyID, &u.GroupID, &u.AccountID, &u.Path, &u.Model,
		&u.UpstreamModel, &u.Stream, &u.Status, &u.ErrorClass, &u.InputTokens, &u.OutputTokens,
		&u.CacheReadTokens, &u.CacheCreationTokens, &u.ReasoningTokens, &u.Priced, &u.CostMicros,
		&u.InputCostMicros, &u.OutputCostMicros, &u.CacheReadCostMicros, &u.CacheWriteCostMicros,
		&u.RateMicros, &u.BillingMode, &u.SubscriptionID, &u.ReservedMicros, &u.AdmissionMs, &u.UpstreamMs,
		&u.FirstTokenMs, &u.DurationMs, &u.Attempts, &u.CreatedAt, &u.UsageSource, &u.ServedModel,
		&u.Warnings)
	return u, err
}

// where renders the filter as SQL conditions on usage_records, with its arguments numbered
// from 1. Only the filters given appear, so the planner can use the matching index.
func (f UsageFilter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.UserID != 0 {
		add("user_id = ?", f.UserID)
	}
	if f.APIKeyID != 0 {
		add("api_key_id = ?", f.APIKeyID)
	}
	if f.AccountID != 0 {
		add("account_id = ?", f.AccountID)
	}
	if f.GroupID != 0 {
		add("group_id = ?", f.GroupID)
	}
	if f.Model != "" {
		add("model = ?", f.Model)
	}
	if f.Status != 0 {
		add("status = ?", f.Status)
	}
	if !f.From.IsZero() {
		add("created_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("created_at < ?", f.To)
	}
	if len(conds) == 0 {
		return "true", nil
	}
	return strings.Join(conds, " AND "), args
}

// ListUsage returns a page of the records matching f, newest first (by id). cursor is the
// NextCursor of the previous page (0 = first page): the page holds the records with a
// smaller id, so records inserted meanwhile never shift or repeat a page. limit is capped
// at MaxUsageLimit; 0 = DefaultUsageLimit.
func (s *Store) ListUsage(ctx context.Context, f UsageFilter, cursor int64, limit int) (UsagePage, error) {
	if limit <= 0 {
		limit = DefaultUsageLimit
	}
	limit = min(limit, MaxUsageLimit)
	where, args := f.where()
	if cursor > 0 {
		args = append(args, cursor)
		where += " AND id < $" + strconv.Itoa(len(args))
	}
	args = append(args, limit+1)
	sql := "SELECT " + usageColumnList + " FROM usage_records WHERE " + where +
		" ORDER BY id DESC LIMIT $" + strconv.Itoa(len(args))
	rows, err := s.Pool.Query(ctx, sql, args...)
	if err != nil {
		return UsagePage{}, fmt.Errorf("listing usage: %w", err)
	}
	records, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (UsageRecord, error) { return scanUsageRecord(r) })
	if err != nil {
		return UsagePage{}, fmt.Errorf("listing usage: %w", err)
	}
	page := UsagePage{Records: records}
	if len(records) > limit {
		page.Records = records[:limit]
		page.NextCursor = records[limit-1].ID
	}
	return page, nil
}

// ErrUsageNotFound means no usage record has that request id.
var ErrUsageNotFound = errors.New("usage record not found")

// GetUsage returns the record of a request.
func (s *Store) GetUsage(ctx context.Context, requestID string) (UsageRecord, error) {
	u, err := scanUsageRecord(s.Pool.QueryRow(ctx,
		"SELECT "+usageColumnList+" FROM usage_records WHERE request_id = $1", requestID))
	if errors.Is(err, pgx.ErrNoRows) {
		return UsageRecord{}, ErrUsageNotFound
	}
	if err != nil {
		return UsageRecord{}, fmt.Errorf("reading usage of %s: %w", requestID, err)
	}
	return u, nil
}

const sqlUsageAttempts = `
SELECT attempt, COALESCE(account_id, 0), status, error_class, input_tokens, output_tokens,
       cache_read_tokens, cache_creation_tokens, reasoning_tokens, cost_micros, latency_ms,
       first_token_ms, created_at, usage_source, breaker_open, hedge_lost, retried_same_account
FROM usage_attempts WHERE request_id = $1 ORDER BY attempt`

// UsageAttempts lists the upstream attempts of a request in order.
func (s *Store) UsageAttempts(ctx context.Context, requestID string) ([]UsageAttempt, error) {
	rows, err := s.Pool.Query(ctx, sqlUsageAttempts, requestID)
	if err != nil {
		return nil, fmt.Errorf("listing attempts of %s: %w", requestID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (UsageAttempt, error) {
		var a UsageAttempt
		err := r.Scan(&a.Attempt, &a.AccountID, &a.Status, &a.ErrorClass, &a.InputTokens, &a.OutputTokens,
			&a.CacheReadTokens, &a.CacheCreationTokens, &a.ReasoningTokens, &a.CostMicros, &a.LatencyMs,
			&a.FirstTokenMs, &a.CreatedAt, &a.UsageSource, &a.BreakerOpen, &a.HedgeLost, &a.RetriedSameAccount)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing attempts of %s: %w", requestID, err)
	}
	return out, nil
}

// UsageRouting returns the routing explanation stored with a request's record (a JSON
// array, package routing), nil when the record has none; ErrUsageNotFound when there is no
// record. It is read apart from the record, which the listing selects without it.
func (s *Store) UsageRouting(ctx context.Context, requestID string) ([]byte, error) {
	var raw []byte
	err := s.Pool.QueryRow(ctx, `SELECT routing FROM usage_records WHERE request_id = $1`, requestID).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUsageNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading routing of %s: %w", requestID, err)
	}
	return raw, nil
}
