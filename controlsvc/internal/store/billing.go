package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// Reserve, then settle (docs/billing.md). Every transaction here locks the user row first:
// a user's reservations, subscriptions and keys are only changed under their user's lock,
// so Reserve, SettleInTx and the sweeper serialise per user and cannot deadlock each other.
// After the user: subscription, then key.

// ReserveInput is one admission's reservation request.
type ReserveInput struct {
	RequestID string
	UserID    int64
	APIKeyID  int64
	GroupID   int64
	// AmountMicros is the cost estimate; Reserve caps it at the group's max_reserve_micros
	// unless the group caps output (cap_output_tokens: the estimate is an upper bound and
	// stays whole), and at what the billing rules leave available (issue 14 §5); negative
	// counts as 0.
	AmountMicros int64
	// MinAmountMicros is the estimate of the input alone: the request is refused only when
	// less than this is available. It counts at most AmountMicros.
	MinAmountMicros int64
}

// Reservation is money held for one request in flight.
type Reservation struct {
	RequestID      string
	UserID         int64
	APIKeyID       int64
	GroupID        int64
	BillingMode    string // BillingBalance | BillingSubscription
	SubscriptionID *int64 // subscription mode: the subscription charged
	KeyQuota       bool   // the amount is also held on the key's quota
	AmountMicros   int64
	CreatedAt      time.Time
	// Existing: the request had reserved already (a re-admission); nothing was checked or
	// held again.
	Existing bool
}

// RefusalKind says which billing rule refused an admission.
type RefusalKind string

// Refusals, in the order they are checked; docs/billing.md maps them to client errors.
const (
	RefuseKeyExpired          RefusalKind = "key_expired"          // 403 permission_error
	RefuseInsufficientBalance RefusalKind = "insufficient_balance" // 403 billing_error
	RefuseNoSubscription      RefusalKind = "no_subscription"      // 403 billing_error
	RefuseWindowExhausted     RefusalKind = "window_exhausted"     // 429 rate_limit_exceeded + Retry-After
	RefuseKeyQuota            RefusalKind = "key_quota_exhausted"  // 429 insufficient_quota
)

// BillingRefusal is an admission refused by a billing rule.
type BillingRefusal struct {
	Kind    RefusalKind
	Message string // the client-facing message of docs/billing.md
	// Window names the exhausted window (billing.Daily, Weekly, Monthly) and
	// RetryAfterSeconds is the time to its end, rounded up; RefuseWindowExhausted only.
	Window            string
	RetryAfterSeconds int64
	// AvailableMicros is what the refusing rule left (balance less reservations, quota
	// left); RefuseInsufficientBalance and RefuseKeyQuota only.
	AvailableMicros int64
}

// Client-facing messages of the refusals.
const (
	MsgKeyExpired          = "API key has expired"
	MsgInsufficientBalance = "Insufficient account balance"
	MsgNoSubscription      = "No active subscription found for this group"
	MsgKeyQuota            = "API key quota exhausted"
)

var windowMessages = map[string]string{
	billing.Daily:   "Daily usage limit exceeded",
	billing.Weekly:  "Weekly usage limit exceeded",
	billing.Monthly: "Monthly usage limit exceeded",
}

// ErrReservationMismatch means a request id already holds a reservation of another user,
// key or group: request ids are unique per client request, so this is a caller bug.
var ErrReservationMismatch = errors.New("request id already reserved for another user, key or group")

const reservationColumns = `request_id, user_id, api_key_id, group_id, billing_mode, subscription_id, key_quota, amount_micros, created_at`

const (
	sqlReserveLockUser = `SELECT balance_micros, reserved_micros FROM users WHERE id = $1 FOR UPDATE`
	sqlGetReservation  = `SELECT ` + reservationColumns + ` FROM reservations WHERE request_id = $1`
	sqlReserveGroup    = `
SELECT billing_mode, daily_limit_micros, weekly_limit_micros, monthly_limit_micros,
       CASE WHEN cap_output_tokens THEN 9223372036854775807 ELSE max_reserve_micros END
FROM groups WHERE id = $1`
	// The subscription in force at $3 of the user in the group, locked; only looked up when
	// the group bills by subscription.
	sqlReserveLockSubscription = `
SELECT s.id, s.starts_at, s.daily_window_start, s.daily_used_micros, s.weekly_window_start,
       s.weekly_used_micros, s.monthly_window_start, s.monthly_used_micros, s.reserved_micros
FROM subscriptions s
WHERE s.user_id = $1 AND s.group_id = $2 AND s.status = 'active' AND s.starts_at <= $3 AND s.expires_at > $3
  AND EXISTS (SELECT 1 FROM groups g WHERE g.id = $2 AND g.billing_mode = 'subscription')
ORDER BY s.starts_at, s.id
LIMIT 1
FOR UPDATE OF s`
	sqlReserveLockKey = `
SELECT expires_at, quota_micros, quota_used_micros, quota_reserved_micros
FROM api_keys WHERE id = $1 FOR UPDATE`

	sqlInsertReservation = `
INSERT INTO reservations (request_id, user_id, api_key_id, group_id, billing_mode, subscription_id, key_quota, amount_micros)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING created_at`
	sqlHoldUser         = `UPDATE users SET reserved_micros = reserved_micros + $2 WHERE id = $1`
	sqlHoldSubscription = `UPDATE subscriptions SET reserved_micros = reserved_micros + $2 WHERE id = $1`
	sqlHoldKey          = `UPDATE api_keys SET quota_reserved_micros = quota_reserved_micros + $2 WHERE id = $1`
)

// reserveRows is what one Reserve reads under its locks.
type reserveRows struct {
	userFound          bool
	balance, reserved  int64
	existing           *Reservation
	groupFound         bool
	mode               string
	limits             [3]*int64 // daily, weekly, monthly
	maxReserve         int64
	sub                *subscriptionUsage
	keyFound           bool
	keyExpires         *time.Time
	quota              *int64
	quotaUsed, quotaRe int64
}

// subscriptionUsage is a subscription's window usage as stored.
type subscriptionUsage struct {
	id       int64
	startsAt time.Time
	starts   [3]*time.Time // daily, weekly, monthly window starts
	used     [3]int64
	reserved int64
}

// windows are the current windows in the order of subscriptionUsage's arrays.
func (s *subscriptionUsage) windows(now time.Time, loc *time.Location) [3]billing.Window {
	w := billing.CurrentWindows(s.startsAt, now, loc)
	return [3]billing.Window{w.Daily, w.Weekly, w.Monthly}
}

var billingWindowNames = [3]string{billing.Daily, billing.Weekly, billing.Monthly}

// Reserve checks the billing rules for one request and, if they pass, holds the estimate
// against the balance or the subscription's windows, and the key's quota, in one
// transaction. A refusal is returned as *BillingRefusal with a nil error. It is idempotent
// on RequestID: a request that holds a reservation already gets it back (Existing) without
// any check, so a failover re-admission cannot hold twice.
func (s *Store) Reserve(ctx context.Context, in ReserveInput) (Reservation, *BillingRefusal, error) {
	return s.reserve(ctx, in, time.Now(), billing.Location())
}

func (s *Store) reserve(ctx context.Context, in ReserveInput, now time.Time, loc *time.Location) (Reservation, *BillingRefusal, error) {
	var (
		res     Reservation
		refusal *BillingRefusal
	)
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		rows, err := readReserveRows(ctx, tx, in, now)
		if err != nil {
			return err
		}
		switch {
		case !rows.userFound:
			return &NotFoundError{Resource: "user", ID: in.UserID}
		case rows.existing != nil:
			if rows.existing.UserID != in.UserID || rows.existing.APIKeyID != in.APIKeyID || rows.existing.GroupID != in.GroupID {
				return ErrReservationMismatch
			}
			res = *rows.existing
			res.Existing = true
			return nil
		case !rows.groupFound:
			return &NotFoundError{Resource: "group", ID: in.GroupID}
		case !rows.keyFound:
			return &NotFoundError{Resource: "api key", ID: in.APIKeyID}
		}
		want := max(0, min(in.AmountMicros, rows.maxReserve))
		res = Reservation{RequestID: in.RequestID, UserID: in.UserID, APIKeyID: in.APIKeyID, GroupID: in.GroupID,
			BillingMode: rows.mode, KeyQuota: rows.quota != nil}
		if res.AmountMicros, refusal = rows.check(max(0, min(in.MinAmountMicros, want)), want, now, loc); refusal != nil {
			return nil
		}
		if rows.sub != nil {
			res.SubscriptionID = &rows.sub.id
		}
		return holdReservation(ctx, tx, &res)
	})
	if err != nil {
		return Reservation{}, nil, fmt.Errorf("reserving for request %s: %w", in.RequestID, err)
	}
	return res, refusal, nil
}

// readReserveRows locks and reads, in one round trip: user, then the subscription, then
// the key; the existing reservation and the group are read without locks.
func readReserveRows(ctx context.Context, tx pgx.Tx, in ReserveInput, now time.Time) (*reserveRows, error) {
	b := &pgx.Batch{}
	b.Queue(sqlReserveLockUser, in.UserID)
	b.Queue(sqlGetReservation, in.RequestID)
	b.Queue(sqlReserveGroup, in.GroupID)
	b.Queue(sqlReserveLockSubscription, in.UserID, in.GroupID, now)
	b.Queue(sqlReserveLockKey, in.APIKeyID)
	br := tx.SendBatch(ctx, b)
	rows, err := scanReserveRows(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("reading billing state: %w", err)
	}
	return rows, nil
}

func scanReserveRows(br pgx.BatchResults) (*reserveRows, error) {
	r := &reserveRows{}
	var err error
	if r.userFound, err = rowFound(br.QueryRow().Scan(&r.balance, &r.reserved)); err != nil {
		return nil, err
	}
	existing, err := scanReservation(br.QueryRow())
	if ok, err := rowFound(err); err != nil {
		return nil, err
	} else if ok {
		r.existing = &existing
	}
	if r.groupFound, err = rowFound(br.QueryRow().Scan(&r.mode, &r.limits[0], &r.limits[1], &r.limits[2], &r.maxReserve)); err != nil {
		return nil, err
	}
	var sub subscriptionUsage
	ok, err := rowFound(br.QueryRow().Scan(&sub.id, &sub.startsAt, &sub.starts[0], &sub.used[0], &sub.starts[1],
		&sub.used[1], &sub.starts[2], &sub.used[2], &sub.reserved))
	if err != nil {
		return nil, err
	}
	if ok {
		r.sub = &sub
	}
	if r.keyFound, err = rowFound(br.QueryRow().Scan(&r.keyExpires, &r.quota, &r.quotaUsed, &r.quotaRe)); err != nil {
		return nil, err
	}
	return r, nil
}

// rowFound turns pgx.ErrNoRows into false.
func rowFound(err error) (bool, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func scanReservation(row pgx.Row) (Reservation, error) {
	var r Reservation
	err := row.Scan(&r.RequestID, &r.UserID, &r.APIKeyID, &r.GroupID, &r.BillingMode, &r.SubscriptionID,
		&r.KeyQuota, &r.AmountMicros, &r.CreatedAt)
	return r, err
}

// holdReservation inserts the reservation and adds its amount to the reserved sums, in one round trip.
func holdReservation(ctx context.Context, tx pgx.Tx, res *Reservation) error {
	b := &pgx.Batch{}
	b.Queue(sqlInsertReservation, res.RequestID, res.UserID, res.APIKeyID, res.GroupID, res.BillingMode,
		res.SubscriptionID, res.KeyQuota, res.AmountMicros).QueryRow(func(row pgx.Row) error {
		return row.Scan(&res.CreatedAt)
	})
	if res.AmountMicros > 0 {
		if res.SubscriptionID != nil {
			b.Queue(sqlHoldSubscription, *res.SubscriptionID, res.AmountMicros)
		} else {
			b.Queue(sqlHoldUser, res.UserID, res.AmountMicros)
		}
		if res.KeyQuota {
			b.Queue(sqlHoldKey, res.APIKeyID, res.AmountMicros)
		}
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("holding %d micros: %w", res.AmountMicros, err)
	}
	return nil
}

// GetReservation returns the reservation of a request in flight; ok is false when it has
// none (never reserved, settled or released).
func (s *Store) GetReservation(ctx context.Context, requestID string) (Reservation, bool, error) {
	r, err := scanReservation(s.Pool.QueryRow(ctx, sqlGetReservation, requestID))
	ok, err := rowFound(err)
	if err != nil {
		return Reservation{}, false, fmt.Errorf("reading reservation of request %s: %w", requestID, err)
	}
	return r, ok, nil
}
