package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bounds of a usage listing.
const (
	DefaultUsageLimit = 100
	MaxUsageLimit     = 1000
)

// UsageFilter selects usage records; zero fields do not filter.
type UsageFilter struct {
	UserID    int64
	APIKeyID  int64
	AccountID int64
	Since     time.Time // records created at or after
	Limit     int       // 0 = DefaultUsageLimit; capped at MaxUsageLimit
}

// UsageRecord is one finished client request as the admin API lists it.
type UsageRecord struct {
	ID                  int64
	RequestID           string
	UserID              int64
	APIKeyID            int64
	GroupID             int64
	AccountID           int64 // 0 when no account was reached
	Path                string
	Model               string
	UpstreamModel       string
	Stream              bool
	Status              int // HTTP status the client got
	ErrorClass          string
	InputTokens         int64 // exclusive of cache tokens
	OutputTokens        int64
	CacheReadTokens     int64
	CacheCreationTokens int64
	CostMicros          int64
	DurationMs          int64
	FirstTokenMs        int64
	Attempts            int
	CreatedAt           time.Time
}

const sqlListUsage = `
SELECT id, request_id, user_id, api_key_id, group_id, COALESCE(account_id, 0), path, model,
       upstream_model, stream, status, error_class, input_tokens, output_tokens,
       cache_read_tokens, cache_creation_tokens, cost_micros, duration_ms, first_token_ms,
       attempts, created_at
FROM usage_records
WHERE ($1::bigint = 0 OR user_id = $1)
  AND ($2::bigint = 0 OR api_key_id = $2)
  AND ($3::bigint = 0 OR account_id = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
ORDER BY created_at DESC, id DESC
LIMIT $5`

// ListUsage returns the records matching f, newest first.
func (s *Store) ListUsage(ctx context.Context, f UsageFilter) ([]UsageRecord, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultUsageLimit
	}
	if limit > MaxUsageLimit {
		limit = MaxUsageLimit
	}
	var since *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	rows, err := s.Pool.Query(ctx, sqlListUsage, f.UserID, f.APIKeyID, f.AccountID, since, limit)
	if err != nil {
		return nil, fmt.Errorf("listing usage: %w", err)
	}
	records, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (UsageRecord, error) {
		var u UsageRecord
		err := r.Scan(&u.ID, &u.RequestID, &u.UserID, &u.APIKeyID, &u.GroupID, &u.AccountID, &u.Path,
			&u.Model, &u.UpstreamModel, &u.Stream, &u.Status, &u.ErrorClass, &u.InputTokens,
			&u.OutputTokens, &u.CacheReadTokens, &u.CacheCreationTokens, &u.CostMicros,
			&u.DurationMs, &u.FirstTokenMs, &u.Attempts, &u.CreatedAt)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing usage: %w", err)
	}
	return records, nil
}
