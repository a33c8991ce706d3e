package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// MarkKind says which health state of an account a mark sets.
type MarkKind int

// Health marks, set from upstream failures (docs/design.md, "Health model").
const (
	MarkRateLimited  MarkKind = iota + 1 // upstream 429
	MarkOverloaded                       // unused since the breakers: a 529 counts towards the breaker
	MarkPaused                           // credential 401, quota, dial failures
	MarkForbidden                        // upstream 403: paused, and counted by Strikes
	MarkModelBlocked                     // upstream "model not found": blocked for Model only
)

// AccountMark takes an account out of rotation until Until.
type AccountMark struct {
	Kind   MarkKind
	Until  time.Time
	Reason string // stored as pause_reason for MarkPaused and MarkForbidden
	// Model is the upstream model a MarkModelBlocked blocks.
	Model string
	// Strikes is MarkForbidden's rule for disabling the account.
	Strikes StrikeRule
}

// StrikeRule disables an account at its Limit-th strike within Window (e.g. the third 403
// within 3 h). At is when this strike happened.
type StrikeRule struct {
	At     time.Time
	Window time.Duration
	Limit  int
	Reason string // stored as disabled_reason
}

// MarkResult says what a mark did beyond setting its deadline.
type MarkResult struct {
	Disabled bool // this mark disabled the account
}

// A deadline only moves forward: a short default cooldown never shortens a longer reset
// that another request already recorded.
const (
	sqlMarkRateLimited = `UPDATE accounts SET rate_limited_until = GREATEST(COALESCE(rate_limited_until, $2), $2) WHERE id = $1`
	sqlMarkOverloaded  = `UPDATE accounts SET overloaded_until = GREATEST(COALESCE(overloaded_until, $2), $2) WHERE id = $1`
	// The reason is the longest pause's: a short dial back-off during an hour's
	// insufficient_quota pause must not relabel it.
	sqlMarkPaused = `UPDATE accounts SET
    pause_reason = CASE WHEN $2 >= COALESCE(paused_until, $2) THEN $3 ELSE pause_reason END,
    paused_until = GREATEST(COALESCE(paused_until, $2), $2)
WHERE id = $1`

	// The row lock serialises the strikes of one account across every controlsvc instance.
	sqlLockStrikes   = `SELECT status, disabled_reason, forbidden_at FROM accounts WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`
	sqlMarkForbidden = `
UPDATE accounts SET
    paused_until    = GREATEST(COALESCE(paused_until, $2), $2),
    pause_reason    = $3,
    forbidden_at    = $4,
    status          = $5,
    disabled_reason = $6,
    updated_at      = CASE WHEN status = $5 THEN updated_at ELSE now() END
WHERE id = $1`

	// Selecting from accounts makes an unknown account a no-op rather than a foreign key error.
	sqlMarkModelBlocked = `
INSERT INTO account_model_blocks (account_id, model, blocked_until)
SELECT id, $2, $3 FROM accounts WHERE id = $1
ON CONFLICT (account_id, model) DO UPDATE
SET blocked_until = GREATEST(account_model_blocks.blocked_until, EXCLUDED.blocked_until)`
	sqlPurgeModelBlocks = `DELETE FROM account_model_blocks WHERE account_id = $1 AND blocked_until <= now()`

	// Clearing the state re-enables an account only when the health rules disabled it
	// (disabled_reason set); an account an operator disabled stays disabled.
	sqlClearAccountState = `
UPDATE accounts SET
    rate_limited_until = NULL,
    overloaded_until   = NULL,
    paused_until       = NULL,
    pause_reason       = '',
    forbidden_at       = '{}',
    status             = CASE WHEN disabled_reason <> '' THEN 'active' ELSE status END,
    disabled_reason    = '',
    updated_at         = now()
WHERE id = $1 AND deleted_at IS NULL`
	sqlClearModelBlocks = `DELETE FROM account_model_blocks WHERE account_id = $1`
)

// MarkAccount records a health mark on an account; an unknown account id is a no-op.
func (s *Store) MarkAccount(ctx context.Context, accountID int64, m AccountMark) (MarkResult, error) {
	var err error
	var res MarkResult
	switch m.Kind {
	case MarkRateLimited:
		_, err = s.Pool.Exec(ctx, sqlMarkRateLimited, accountID, m.Until)
	case MarkOverloaded:
		_, err = s.Pool.Exec(ctx, sqlMarkOverloaded, accountID, m.Until)
	case MarkPaused:
		_, err = s.Pool.Exec(ctx, sqlMarkPaused, accountID, m.Until, m.Reason)
	case MarkForbidden:
		res, err = s.markForbidden(ctx, accountID, m)
	case MarkModelBlocked:
		err = s.markModelBlocked(ctx, accountID, m)
	default:
		err = fmt.Errorf("unknown mark kind %d", m.Kind)
	}
	if err != nil {
		return MarkResult{}, fmt.Errorf("marking account %d: %w", accountID, err)
	}
	return res, nil
}

// markForbidden pauses the account and records the strike; the Limit-th strike within the
// window disables an active account, with the rule's reason.
func (s *Store) markForbidden(ctx context.Context, accountID int64, m AccountMark) (MarkResult, error) {
	r := m.Strikes
	if r.Limit <= 0 || r.Window <= 0 || r.At.IsZero() {
		return MarkResult{}, errors.New("forbidden mark without a strike rule")
	}
	var res MarkResult
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		var status, reason string
		var strikes []time.Time
		err := tx.QueryRow(ctx, sqlLockStrikes, accountID).Scan(&status, &reason, &strikes)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading strikes: %w", err)
		}
		strikes = recentStrikes(strikes, r)
		if len(strikes) >= r.Limit && status == "active" {
			status, reason, res.Disabled = "disabled", r.Reason, true
		}
		if _, err := tx.Exec(ctx, sqlMarkForbidden, accountID, m.Until, m.Reason, strikes, status, reason); err != nil {
			return fmt.Errorf("recording strike: %w", err)
		}
		return nil
	})
	return res, err
}

// recentStrikes adds r.At to the strikes and keeps those within r.Window of it, oldest
// first and at most r.Limit: older ones can no longer count.
func recentStrikes(strikes []time.Time, r StrikeRule) []time.Time {
	since := r.At.Add(-r.Window)
	out := make([]time.Time, 0, len(strikes)+1)
	for _, t := range strikes {
		if t.After(since) {
			out = append(out, t)
		}
	}
	out = append(out, r.At)
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	if len(out) > r.Limit {
		out = out[len(out)-r.Limit:]
	}
	return out
}

func (s *Store) markModelBlocked(ctx context.Context, accountID int64, m AccountMark) error {
	if m.Model == "" {
		return errors.New("model block without a model")
	}
	b := &pgx.Batch{}
	b.Queue(sqlPurgeModelBlocks, accountID)
	b.Queue(sqlMarkModelBlocked, accountID, m.Model, m.Until)
	return s.Pool.SendBatch(ctx, b).Close()
}

// ClearAccountState ends every health state of an account: the rate limit, overload and
// pause deadlines, the model blocks and the 403 strikes; an account the health rules
// disabled is active again. It returns the account; a deleted or unknown one is a
// NotFoundError.
func (s *Store) ClearAccountState(ctx context.Context, id int64) (Account, error) {
	var out Account
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sqlClearAccountState, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return &NotFoundError{Resource: "account", ID: id}
		}
		if _, err := tx.Exec(ctx, sqlClearModelBlocks, id); err != nil {
			return err
		}
		out, err = scanAccount(tx.QueryRow(ctx, sqlGetAccount, id))
		return err
	})
	if err != nil {
		return Account{}, fmt.Errorf("clearing state of account %d: %w", id, err)
	}
	return out, nil
}
