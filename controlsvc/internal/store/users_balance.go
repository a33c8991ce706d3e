package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/money"
)

// BalanceAdjustment is one audited operator change of a user's balance.
type BalanceAdjustment struct {
	ID                 int64
	UserID             int64
	AmountMicros       int64 // signed: a credit is positive
	BalanceAfterMicros int64
	Note               string
	CreatedAt          time.Time
}

// Notes of the adjustments written by other operations than AdjustBalance.
const (
	NoteInitialBalance = "initial balance"
	NoteBalanceSet     = "balance set by PATCH /users/{id}"
)

// pgNumericOutOfRange is the SQLSTATE of a BIGINT overflow.
const pgNumericOutOfRange = "22003"

const (
	sqlLockUserBalance = `SELECT balance_micros FROM users WHERE id = $1 FOR UPDATE`

	sqlAdjustBalance = `
UPDATE users SET balance_micros = balance_micros + $2, updated_at = now()
WHERE id = $1
RETURNING ` + userColumns

	sqlInsertAdjustment = `
INSERT INTO balance_adjustments (user_id, amount_micros, balance_after_micros, note)
VALUES ($1, $2, $3, $4)`

	// $2 = 0: from the newest; else adjustments older than id $2. Newest first.
	sqlListAdjustments = `
SELECT id, user_id, amount_micros, balance_after_micros, note, created_at
FROM balance_adjustments
WHERE user_id = $1 AND ($2::bigint = 0 OR id < $2)
ORDER BY id DESC
LIMIT $3`
)

func insertAdjustment(ctx context.Context, tx pgx.Tx, userID, amount, after int64, note string) error {
	if _, err := tx.Exec(ctx, sqlInsertAdjustment, userID, amount, after, note); err != nil {
		return fmt.Errorf("recording balance adjustment of user %d: %w", userID, err)
	}
	return nil
}

// AdjustBalance adds amountMicros (negative to debit) to the user's balance and records the
// change with its note, in one transaction. A debit that would leave the balance below zero
// is an InvalidError on amount_usd: operator adjustments never create a debt.
func (s *Store) AdjustBalance(ctx context.Context, userID, amountMicros int64, note string) (User, error) {
	var u User
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		var before int64
		if err := tx.QueryRow(ctx, sqlLockUserBalance, userID).Scan(&before); err != nil {
			return err
		}
		if amountMicros < 0 && before+amountMicros < 0 {
			return &InvalidError{Field: "amount_usd", Message: fmt.Sprintf(
				"the debit would make the balance negative (balance is %s USD)", formatUSD(before))}
		}
		var err error
		if u, err = scanUser(tx.QueryRow(ctx, sqlAdjustBalance, userID, amountMicros)); err != nil {
			return err
		}
		return insertAdjustment(ctx, tx, userID, amountMicros, u.BalanceMicros, note)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return User{}, &NotFoundError{Resource: "user", ID: userID}
	case pgCode(err) == pgNumericOutOfRange:
		return User{}, &InvalidError{Field: "amount_usd", Message: "the balance would be out of range"}
	case err != nil:
		return User{}, fmt.Errorf("adjusting balance of user %d: %w", userID, err)
	}
	return u, nil
}

// ListBalanceAdjustments returns up to limit adjustments of the user, newest first, older
// than the adjustment id before (0 = from the newest). An unknown user is a NotFoundError.
func (s *Store) ListBalanceAdjustments(ctx context.Context, userID, before int64, limit int) ([]BalanceAdjustment, error) {
	return listOfUser(ctx, s, "listing balance adjustments", userID, scanAdjustment, sqlListAdjustments, userID, before, limit)
}

func scanAdjustment(row pgx.Row) (BalanceAdjustment, error) {
	var a BalanceAdjustment
	err := row.Scan(&a.ID, &a.UserID, &a.AmountMicros, &a.BalanceAfterMicros, &a.Note, &a.CreatedAt)
	return a, err
}

// formatUSD renders micros as an exact decimal for messages.
func formatUSD(v int64) string { return string(money.Format(v)) }
