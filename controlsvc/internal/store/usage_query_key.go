package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// KeyUsage is what GET /v1/usage shows a gateway key about itself: its usage totals, the
// money its user has left (balance mode) or its subscription (subscription mode), and its
// own quota.
type KeyUsage struct {
	KeyID       int64
	KeyName     string
	UserID      int64
	GroupID     int64
	BillingMode string
	ExpiresAt   *time.Time

	// Balance mode: the user's balance and the part held by requests in flight.
	BalanceMicros  int64
	ReservedMicros int64

	// The key's lifetime quota; nil = none.
	QuotaMicros         *int64
	QuotaUsedMicros     int64
	QuotaReservedMicros int64

	// The group's window limits (subscription mode); nil = unlimited.
	DailyLimitMicros, WeeklyLimitMicros, MonthlyLimitMicros *int64
	// Subscription is the user's subscription to the group active at now; nil = none.
	Subscription *KeySubscription

	Today, Month, Total UsageTotals
}

// KeySubscription is a subscription as stored: each window's usage is kept with the start
// of the window it belongs to (package billing decides whether it still counts).
type KeySubscription struct {
	ID                                                      int64
	StartsAt, ExpiresAt                                     time.Time
	DailyWindowStart, WeeklyWindowStart, MonthlyWindowStart *time.Time
	DailyUsedMicros, WeeklyUsedMicros, MonthlyUsedMicros    int64
	ReservedMicros                                          int64
}

// ErrKeyUnknown means no usable key has that hash (unknown, disabled or deleted, or its
// user or group disabled).
var ErrKeyUnknown = errors.New("api key not found or not active")

const sqlKeyUsage = `
SELECT k.id, k.name, k.user_id, k.group_id, g.billing_mode, k.expires_at,
       u.balance_micros, u.reserved_micros, k.quota_micros, k.quota_used_micros, k.quota_reserved_micros,
       g.daily_limit_micros, g.weekly_limit_micros, g.monthly_limit_micros
FROM api_keys k
JOIN users  u ON u.id = k.user_id
JOIN groups g ON g.id = k.group_id
WHERE k.key_hash = $1
  AND k.status = 'active' AND k.deleted_at IS NULL
  AND u.status = 'active' AND g.status = 'active'`

// sqlKeySubscription picks the subscription admission charges: the one in force at $3 that
// started first (store/billing.go, sqlReserveLockSubscription).
const sqlKeySubscription = `
SELECT id, starts_at, expires_at, daily_window_start, weekly_window_start, monthly_window_start,
       daily_used_micros, weekly_used_micros, monthly_used_micros, reserved_micros
FROM subscriptions
WHERE user_id = $1 AND group_id = $2 AND status = 'active' AND starts_at <= $3 AND expires_at > $3
ORDER BY starts_at, id
LIMIT 1`

// sqlKeyTotals sums a key's records: since $2 (today), since $3 (this month) and in all,
// in one pass over the key's records.
var sqlKeyTotals = `
SELECT ` + sqlKeyTotalsFilter("created_at >= $2") + `, ` + sqlKeyTotalsFilter("created_at >= $3") + `,
       ` + sqlTotalsColumns + `
FROM usage_records WHERE api_key_id = $1`

func sqlKeyTotalsFilter(cond string) string {
	f := " FILTER (WHERE " + cond + ")"
	col := func(c string) string { return "COALESCE(sum(" + c + ")" + f + ", 0)::bigint" }
	return "count(*)" + f + ", " + col("input_tokens") + ", " + col("output_tokens") + ", " +
		col("cache_read_tokens") + ", " + col("cache_creation_tokens") + ", " + col("reasoning_tokens") + ", " +
		col("cost_micros") + ", " + col("input_cost_micros") + ", " + col("output_cost_micros") + ", " +
		col("cache_read_cost_micros") + ", " + col("cache_write_cost_micros")
}

// KeyUsage reads what the key whose SHA-256 hex hash is keyHash may know about itself at
// now; today and month are the starts of the current day and month of the billing time
// zone. The reads are one snapshot (a repeatable-read transaction), so the totals and the
// balance agree.
func (s *Store) KeyUsage(ctx context.Context, keyHash string, now, today, month time.Time) (KeyUsage, error) {
	var k KeyUsage
	err := pgx.BeginTxFunc(ctx, s.Pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, sqlKeyUsage, keyHash).Scan(&k.KeyID, &k.KeyName, &k.UserID, &k.GroupID,
				&k.BillingMode, &k.ExpiresAt, &k.BalanceMicros, &k.ReservedMicros, &k.QuotaMicros,
				&k.QuotaUsedMicros, &k.QuotaReservedMicros, &k.DailyLimitMicros, &k.WeeklyLimitMicros,
				&k.MonthlyLimitMicros)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrKeyUnknown
			}
			if err != nil {
				return err
			}
			var sub KeySubscription
			err = tx.QueryRow(ctx, sqlKeySubscription, k.UserID, k.GroupID, now).Scan(&sub.ID, &sub.StartsAt,
				&sub.ExpiresAt, &sub.DailyWindowStart, &sub.WeeklyWindowStart, &sub.MonthlyWindowStart,
				&sub.DailyUsedMicros, &sub.WeeklyUsedMicros, &sub.MonthlyUsedMicros, &sub.ReservedMicros)
			switch {
			case err == nil:
				k.Subscription = &sub
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
			targets := append(append(k.Today.scanTargets(), k.Month.scanTargets()...), k.Total.scanTargets()...)
			return tx.QueryRow(ctx, sqlKeyTotals, k.KeyID, today, month).Scan(targets...)
		})
	if errors.Is(err, ErrKeyUnknown) {
		return KeyUsage{}, ErrKeyUnknown
	}
	if err != nil {
		return KeyUsage{}, fmt.Errorf("reading usage of key: %w", err)
	}
	return k, nil
}
