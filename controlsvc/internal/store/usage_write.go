package store

import (
	"context"
	"errors"
	"fmt"

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
	sqlInsertUsage = `
INSERT INTO usage_records (request_id, grant_id, user_id, api_key_id, group_id, account_id,
    path, model, upstream_model, stream, status, error_class,
    input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, cost_micros,
    duration_ms, first_token_ms, attempts, attempt_details)
VALUES ($1, $2, $3, $4, $5, NULLIF($6::bigint, 0), $7, $8, $9, $10, $11, $12,
    $13, $14, $15, $16, $17, $18, $19, $20, $21)
ON CONFLICT (request_id) DO NOTHING
RETURNING id`

	sqlChargeUser = `UPDATE users SET balance_micros = balance_micros - $2 WHERE id = $1`

	sqlGroupRate = `SELECT (rate_multiplier * 1000000)::bigint FROM groups WHERE id = $1`
)

// ErrGroupNotFound means no group has that id.
var ErrGroupNotFound = errors.New("group not found")

// WriteUsage inserts the usage record and charges its cost to the user's balance in one
// transaction. It is idempotent on RequestID: a repeated record is neither stored nor
// charged again, and inserted reports false.
func (s *Store) WriteUsage(ctx context.Context, u UsageWrite) (inserted bool, err error) {
	details := u.AttemptDetails
	if len(details) == 0 {
		details = []byte("[]")
	}
	err = s.WithTx(ctx, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, sqlInsertUsage, u.RequestID, u.GrantID, u.UserID, u.APIKeyID, u.GroupID,
			u.AccountID, u.Path, u.Model, u.UpstreamModel, u.Stream, u.Status, u.ErrorClass,
			u.InputTokens, u.OutputTokens, u.CacheReadTokens, u.CacheCreationTokens, u.CostMicros,
			u.DurationMs, u.FirstTokenMs, u.Attempts, string(details)).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // duplicate report: already stored and charged
		}
		if err != nil {
			return fmt.Errorf("inserting usage record: %w", err)
		}
		inserted = true
		if u.CostMicros == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, sqlChargeUser, u.UserID, u.CostMicros); err != nil {
			return fmt.Errorf("charging user %d: %w", u.UserID, err)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("writing usage of %s: %w", u.RequestID, err)
	}
	return inserted, nil
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
