package store

import (
	"context"
	"fmt"
	"time"
)

// MarkKind says which health deadline of an account a mark sets.
type MarkKind int

// Health marks, set from upstream failures (docs/design.md, "/internal/v1/admit").
const (
	MarkRateLimited MarkKind = iota + 1 // upstream 429
	MarkOverloaded                      // upstream 529
	MarkPaused                          // upstream 401/403, persistent transport errors
)

// AccountMark takes an account out of rotation until Until.
type AccountMark struct {
	Kind   MarkKind
	Until  time.Time
	Reason string // stored as pause_reason for MarkPaused
}

// A deadline only moves forward: a short default cooldown never shortens a longer reset
// that another request already recorded.
const (
	sqlMarkRateLimited = `UPDATE accounts SET rate_limited_until = GREATEST(COALESCE(rate_limited_until, $2), $2) WHERE id = $1`
	sqlMarkOverloaded  = `UPDATE accounts SET overloaded_until = GREATEST(COALESCE(overloaded_until, $2), $2) WHERE id = $1`
	sqlMarkPaused      = `UPDATE accounts SET paused_until = GREATEST(COALESCE(paused_until, $2), $2), pause_reason = $3 WHERE id = $1`
)

// MarkAccount records a health mark on an account; an unknown account id is a no-op.
func (s *Store) MarkAccount(ctx context.Context, accountID int64, m AccountMark) error {
	var err error
	switch m.Kind {
	case MarkRateLimited:
		_, err = s.Pool.Exec(ctx, sqlMarkRateLimited, accountID, m.Until)
	case MarkOverloaded:
		_, err = s.Pool.Exec(ctx, sqlMarkOverloaded, accountID, m.Until)
	case MarkPaused:
		_, err = s.Pool.Exec(ctx, sqlMarkPaused, accountID, m.Until, m.Reason)
	default:
		return fmt.Errorf("marking account %d: unknown mark kind %d", accountID, m.Kind)
	}
	if err != nil {
		return fmt.Errorf("marking account %d: %w", accountID, err)
	}
	return nil
}
