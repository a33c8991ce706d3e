package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// User is a customer of the gateway: API keys belong to users, and usage is charged to
// their balance.
type User struct {
	ID            int64
	Name          string
	Concurrency   int   // simultaneous requests allowed across all the user's keys
	BalanceMicros int64 // USD × 1 000 000; negative when actual costs overran reservations
	// ReservedMicros is held by the user's requests in flight (balance-mode groups):
	// the holds live in Redis (package holds), so the store reads it as 0 and the admin
	// API adds the holds (adminapi/wallets.go).
	ReservedMicros int64
	Status         string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// UserPatch lists the fields to change; nil leaves a field as it is.
type UserPatch struct {
	Name          *string
	Concurrency   *int
	BalanceMicros *int64
	Status        *string
}

const userColumns = `id, name, concurrency, balance_micros, status, created_at, updated_at`

const (
	sqlInsertUser = `
INSERT INTO users (name, concurrency, balance_micros, status)
VALUES ($1, $2, $3, $4)
RETURNING ` + userColumns

	sqlGetUser   = `SELECT ` + userColumns + ` FROM users WHERE id = $1`
	sqlListUsers = `SELECT ` + userColumns + ` FROM users WHERE id > $1 ORDER BY id LIMIT $2`
	sqlUserIDs   = `SELECT id FROM users ORDER BY id`

	sqlUpdateUser = `
UPDATE users SET
    name           = COALESCE($2, name),
    concurrency    = COALESCE($3, concurrency),
    balance_micros = COALESCE($4, balance_micros),
    status         = COALESCE($5, status),
    updated_at     = now()
WHERE id = $1
RETURNING ` + userColumns
)

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Name, &u.Concurrency, &u.BalanceMicros, &u.Status, &u.CreatedAt, &u.UpdatedAt)
	return u, err
}

// CreateUser inserts u (ID, ReservedMicros and timestamps are ignored) and returns the
// stored row. A starting balance is recorded as a balance adjustment, so the adjustments
// explain every balance.
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	var out User
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		var err error
		if out, err = scanUser(tx.QueryRow(ctx, sqlInsertUser, u.Name, u.Concurrency, u.BalanceMicros, u.Status)); err != nil {
			return err
		}
		if out.BalanceMicros == 0 {
			return nil
		}
		return insertAdjustment(ctx, tx, out.ID, out.BalanceMicros, out.BalanceMicros, NoteInitialBalance)
	})
	if err != nil {
		return User{}, fmt.Errorf("inserting user: %w", err)
	}
	return out, nil
}

// GetUser returns the user with that id.
func (s *Store) GetUser(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.Pool.QueryRow(ctx, sqlGetUser, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, &NotFoundError{Resource: "user", ID: id}
	}
	if err != nil {
		return User{}, fmt.Errorf("reading user %d: %w", id, err)
	}
	return u, nil
}

// ListUsers returns a page of the users, oldest first (Page).
func (s *Store) ListUsers(ctx context.Context, p Page) ([]User, error) {
	rows, err := s.Pool.Query(ctx, sqlListUsers, p.after(0), p.fetch())
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return users, nil
}

// UserIDs returns the ids of every user, ascending.
func (s *Store) UserIDs(ctx context.Context) ([]int64, error) {
	return collectIDs(ctx, s, sqlUserIDs, "users")
}

// UpdateUser applies p to the user with that id and returns the result. A new balance is
// recorded as a balance adjustment of the difference.
func (s *Store) UpdateUser(ctx context.Context, id int64, p UserPatch) (User, error) {
	var u User
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		var before int64
		if p.BalanceMicros != nil {
			if err := tx.QueryRow(ctx, sqlLockUserBalance, id).Scan(&before); err != nil {
				return err
			}
		}
		var err error
		if u, err = scanUser(tx.QueryRow(ctx, sqlUpdateUser, id, p.Name, p.Concurrency, p.BalanceMicros, p.Status)); err != nil {
			return err
		}
		if p.BalanceMicros == nil || u.BalanceMicros == before {
			return nil
		}
		return insertAdjustment(ctx, tx, id, u.BalanceMicros-before, u.BalanceMicros, NoteBalanceSet)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, &NotFoundError{Resource: "user", ID: id}
	}
	if err != nil {
		return User{}, fmt.Errorf("updating user %d: %w", id, err)
	}
	return u, nil
}

func collectIDs(ctx context.Context, s *Store, query, what string) ([]int64, error) {
	rows, err := s.Pool.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("listing %s ids: %w", what, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("listing %s ids: %w", what, err)
	}
	return ids, nil
}

// listOfUser runs query for rows of one user in a transaction that first checks the user
// exists, so an unknown user is a NotFoundError rather than an empty list. Other errors
// are wrapped with what.
func listOfUser[T any](ctx context.Context, s *Store, what string, userID int64, scan func(pgx.Row) (T, error),
	query string, args ...any) ([]T, error) {
	var out []T
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, sqlUserExists, userID).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return &NotFoundError{Resource: "user", ID: userID}
		}
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
		return err
	})
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%s of user %d: %w", what, userID, err)
	}
	return out, nil
}
