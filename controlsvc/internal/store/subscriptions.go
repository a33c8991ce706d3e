package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// Subscription is a user's subscription to a subscription-mode group, with its window usage
// as stored and its group's limits.
type Subscription struct {
	ID        int64
	UserID    int64
	GroupID   int64
	StartsAt  time.Time
	ExpiresAt time.Time
	Status    string // SubscriptionActive | SubscriptionCancelled
	Note      string
	// Window usage as stored: each amount with the start of the window it belongs to (nil =
	// never used). Use Usage for the current windows.
	WindowStarts [3]*time.Time // daily, weekly, monthly
	WindowUsed   [3]int64
	// ReservedMicros is held by requests in flight: the holds live in Redis, so the store
	// reads it as 0 and the admin API adds the holds (adminapi/wallets.go).
	ReservedMicros int64
	// The group's limits (daily, weekly, monthly); nil = unlimited.
	Limits    [3]*int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Subscription statuses.
const (
	SubscriptionActive    = "active"
	SubscriptionCancelled = "cancelled"
)

// InForce reports whether the subscription serves requests at now.
func (s Subscription) InForce(now time.Time) bool {
	return s.Status == SubscriptionActive && !now.Before(s.StartsAt) && now.Before(s.ExpiresAt)
}

// WindowUsage is the usage of one current window.
type WindowUsage struct {
	Name        string // billing.Daily, Weekly, Monthly
	Window      billing.Window
	UsedMicros  int64  // counted in this window: usage of an older window counts 0
	LimitMicros *int64 // nil = unlimited
}

// Usage returns the daily, weekly and monthly windows holding now, with days in loc.
func (s Subscription) Usage(now time.Time, loc *time.Location) [3]WindowUsage {
	w := billing.CurrentWindows(s.StartsAt, now, loc)
	windows := [3]billing.Window{w.Daily, w.Weekly, w.Monthly}
	var out [3]WindowUsage
	for i := range out {
		out[i] = WindowUsage{Name: billingWindowNames[i], Window: windows[i],
			UsedMicros: billing.UsedNow(s.WindowUsed[i], s.WindowStarts[i], windows[i]), LimitMicros: s.Limits[i]}
	}
	return out
}

// NewSubscription is a subscription to create.
type NewSubscription struct {
	UserID    int64
	GroupID   int64
	StartsAt  time.Time
	ExpiresAt time.Time
	Note      string
}

// SubscriptionPatch lists the fields to change; nil leaves a field as it is.
type SubscriptionPatch struct {
	ExpiresAt *time.Time
	Status    *string
	Note      *string
}

// SubscriptionFilter selects subscriptions; zero values match everything.
type SubscriptionFilter struct {
	UserID  int64
	GroupID int64
	Status  string
}

const subscriptionColumns = `s.id, s.user_id, s.group_id, s.starts_at, s.expires_at, s.status, s.note,
s.daily_window_start, s.weekly_window_start, s.monthly_window_start,
s.daily_used_micros, s.weekly_used_micros, s.monthly_used_micros,
g.daily_limit_micros, g.weekly_limit_micros, g.monthly_limit_micros, s.created_at, s.updated_at`

const (
	sqlSubscriptionFrom = ` FROM subscriptions s JOIN groups g ON g.id = s.group_id`

	sqlGetSubscription   = `SELECT ` + subscriptionColumns + sqlSubscriptionFrom + ` WHERE s.id = $1`
	sqlListSubscriptions = `SELECT ` + subscriptionColumns + sqlSubscriptionFrom + `
WHERE ($1::bigint = 0 OR s.user_id = $1) AND ($2::bigint = 0 OR s.group_id = $2) AND ($3 = '' OR s.status = $3)
  AND s.id > $4
ORDER BY s.id LIMIT $5`

	sqlSubscriptionGroupMode = `SELECT billing_mode FROM groups WHERE id = $1`

	sqlInsertSubscription = `
INSERT INTO subscriptions (user_id, group_id, starts_at, expires_at, note)
VALUES ($1, $2, $3, $4, $5)
RETURNING id`

	// An active subscription of the same user × group whose period overlaps [$3, $4).
	sqlOverlappingSubscription = `
SELECT id FROM subscriptions
WHERE user_id = $1 AND group_id = $2 AND status = 'active' AND starts_at < $4 AND expires_at > $3 AND id <> $5
ORDER BY id LIMIT 1`

	sqlSubscriptionOwner = `SELECT user_id FROM subscriptions WHERE id = $1`

	sqlLockSubscription = `SELECT group_id, starts_at, expires_at, status FROM subscriptions WHERE id = $1 FOR UPDATE`

	sqlUpdateSubscription = `
UPDATE subscriptions SET expires_at = $2, status = $3, note = COALESCE($4, note), updated_at = now()
WHERE id = $1`
)

func scanSubscription(row pgx.Row) (Subscription, error) {
	var s Subscription
	err := row.Scan(&s.ID, &s.UserID, &s.GroupID, &s.StartsAt, &s.ExpiresAt, &s.Status, &s.Note,
		&s.WindowStarts[0], &s.WindowStarts[1], &s.WindowStarts[2],
		&s.WindowUsed[0], &s.WindowUsed[1], &s.WindowUsed[2],
		&s.Limits[0], &s.Limits[1], &s.Limits[2], &s.CreatedAt, &s.UpdatedAt)
	return s, err
}

// CreateSubscription subscribes a user to a subscription-mode group. A user or group that
// does not exist, a group billed by balance, or expires_at not after starts_at is an
// InvalidError; an active subscription of the same user × group whose period overlaps is a
// ConflictError. The user row is locked, so concurrent creations cannot both pass the
// overlap check.
func (s *Store) CreateSubscription(ctx context.Context, n NewSubscription) (Subscription, error) {
	if !n.ExpiresAt.After(n.StartsAt) {
		return Subscription{}, &InvalidError{Field: "expires_at", Message: "must be after starts_at"}
	}
	var id int64
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		var user int64
		if ok, err := rowFound(tx.QueryRow(ctx, sqlSettleLockUser, n.UserID).Scan(&user)); err != nil {
			return err
		} else if !ok {
			return &InvalidError{Field: "user_id", Message: fmt.Sprintf("user %d does not exist", n.UserID)}
		}
		if err := checkSubscriptionGroup(ctx, tx, n.GroupID); err != nil {
			return err
		}
		if err := checkNoOverlap(ctx, tx, n.UserID, n.GroupID, n.StartsAt, n.ExpiresAt, 0); err != nil {
			return err
		}
		return tx.QueryRow(ctx, sqlInsertSubscription, n.UserID, n.GroupID, n.StartsAt, n.ExpiresAt, n.Note).Scan(&id)
	})
	if err != nil {
		return Subscription{}, subscriptionError("creating subscription", err)
	}
	return s.GetSubscription(ctx, id)
}

func checkSubscriptionGroup(ctx context.Context, tx pgx.Tx, groupID int64) error {
	var mode string
	ok, err := rowFound(tx.QueryRow(ctx, sqlSubscriptionGroupMode, groupID).Scan(&mode))
	switch {
	case err != nil:
		return err
	case !ok:
		return &InvalidError{Field: "group_id", Message: fmt.Sprintf("group %d does not exist", groupID)}
	case mode != BillingSubscription:
		return &InvalidError{Field: "group_id", Message: fmt.Sprintf(
			"group %d has billing_mode %q; subscriptions need a group with billing_mode \"subscription\"", groupID, mode)}
	}
	return nil
}

func checkNoOverlap(ctx context.Context, tx pgx.Tx, userID, groupID int64, from, to time.Time, self int64) error {
	var other int64
	ok, err := rowFound(tx.QueryRow(ctx, sqlOverlappingSubscription, userID, groupID, from, to, self).Scan(&other))
	if err != nil {
		return err
	}
	if ok {
		return &ConflictError{Message: fmt.Sprintf(
			"user %d already has active subscription %d to group %d overlapping that period", userID, other, groupID)}
	}
	return nil
}

// subscriptionError passes domain errors through and wraps the rest.
func subscriptionError(what string, err error) error {
	var (
		nf *NotFoundError
		ie *InvalidError
		ce *ConflictError
	)
	if errors.As(err, &nf) || errors.As(err, &ie) || errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// GetSubscription returns the subscription with that id.
func (s *Store) GetSubscription(ctx context.Context, id int64) (Subscription, error) {
	sub, err := scanSubscription(s.Pool.QueryRow(ctx, sqlGetSubscription, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Subscription{}, &NotFoundError{Resource: "subscription", ID: id}
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("reading subscription %d: %w", id, err)
	}
	return sub, nil
}

// ListSubscriptions returns a page of the subscriptions f selects, oldest first (Page).
func (s *Store) ListSubscriptions(ctx context.Context, f SubscriptionFilter, p Page) ([]Subscription, error) {
	rows, err := s.Pool.Query(ctx, sqlListSubscriptions, f.UserID, f.GroupID, f.Status, p.after(0), p.fetch())
	if err != nil {
		return nil, fmt.Errorf("listing subscriptions: %w", err)
	}
	subs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Subscription, error) { return scanSubscription(r) })
	if err != nil {
		return nil, fmt.Errorf("listing subscriptions: %w", err)
	}
	return subs, nil
}

// UpdateSubscription applies p: a new expiry (after starts_at), a status (a subscription
// made active again must not overlap another active one: ConflictError) or a note. Its
// user row is locked first, as Reserve does.
func (s *Store) UpdateSubscription(ctx context.Context, id int64, p SubscriptionPatch) (Subscription, error) {
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		var user int64
		if ok, err := rowFound(tx.QueryRow(ctx, sqlSubscriptionOwner, id).Scan(&user)); err != nil {
			return err
		} else if !ok {
			return &NotFoundError{Resource: "subscription", ID: id}
		}
		var locked int64
		if _, err := rowFound(tx.QueryRow(ctx, sqlSettleLockUser, user).Scan(&locked)); err != nil {
			return err
		}
		var (
			group           int64
			starts, expires time.Time
			status          string
		)
		if err := tx.QueryRow(ctx, sqlLockSubscription, id).Scan(&group, &starts, &expires, &status); err != nil {
			return err
		}
		if p.ExpiresAt != nil {
			if !p.ExpiresAt.After(starts) {
				return &InvalidError{Field: "expires_at", Message: fmt.Sprintf("must be after starts_at (%s)", starts.UTC().Format(time.RFC3339))}
			}
			expires = *p.ExpiresAt
		}
		if p.Status != nil {
			status = *p.Status
		}
		if status == SubscriptionActive && (p.ExpiresAt != nil || p.Status != nil) {
			if err := checkNoOverlap(ctx, tx, user, group, starts, expires, id); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, sqlUpdateSubscription, id, expires, status, p.Note)
		return err
	})
	if err != nil {
		return Subscription{}, subscriptionError(fmt.Sprintf("updating subscription %d", id), err)
	}
	return s.GetSubscription(ctx, id)
}

// CancelSubscription sets the subscription's status to cancelled; requests are refused
// from then on, reservations in flight still settle against it.
func (s *Store) CancelSubscription(ctx context.Context, id int64) (Subscription, error) {
	cancelled := SubscriptionCancelled
	return s.UpdateSubscription(ctx, id, SubscriptionPatch{Status: &cancelled})
}
