package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
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

	// Balance mode: the user's balance and the part held by requests in flight; the
	// Reserved amounts here and below live in Redis (package holds): KeyUsage reads them
	// as 0 and the caller adds the holds (adminapi/wallets.go).
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

// sqlKeyUsage reads everything GET /v1/usage shows in one statement (one snapshot, so the
// totals and the balance agree): the key with its user and group, the subscription admission
// charges (the one in force at $2 that started first, as store.LoadWallets picks),
// and the key's running totals (usage_totals_sql.go) — today's from the day row of $3, the
// month's from the day rows since $4 (at most 31), the lifetime totals from one row. It reads
// no usage record, so its cost does not grow with the key's history.
var sqlKeyUsage = `
SELECT k.id, k.name, k.user_id, k.group_id, g.billing_mode, k.expires_at,
       u.balance_micros, k.quota_micros, k.quota_used_micros,
       g.daily_limit_micros, g.weekly_limit_micros, g.monthly_limit_micros,
       s.id, s.starts_at, s.expires_at, s.daily_window_start, s.weekly_window_start, s.monthly_window_start,
       s.daily_used_micros, s.weekly_used_micros, s.monthly_used_micros,
       ` + sqlKeyDaysSum("day >= $3::date") + `, ` + sqlKeyDaysSum("true") + `,
       COALESCE(t.requests, 0)` + sqlKeyLifetime() + `
FROM api_keys k
JOIN users  u ON u.id = k.user_id
JOIN groups g ON g.id = k.group_id
LEFT JOIN LATERAL (
    SELECT id, starts_at, expires_at, daily_window_start, weekly_window_start, monthly_window_start,
           daily_used_micros, weekly_used_micros, monthly_used_micros
    FROM subscriptions
    WHERE user_id = k.user_id AND group_id = k.group_id AND status = 'active' AND starts_at <= $2 AND expires_at > $2
    ORDER BY starts_at, id
    LIMIT 1) s ON true
LEFT JOIN usage_key_totals t ON t.api_key_id = k.id
LEFT JOIN usage_key_days d ON d.api_key_id = k.id AND d.day >= $4::date
WHERE k.key_hash = $1
  AND k.status = 'active' AND k.deleted_at IS NULL
  AND u.status = 'active' AND g.status = 'active'
GROUP BY k.id, u.id, g.id, s.id, s.starts_at, s.expires_at, s.daily_window_start, s.weekly_window_start,
         s.monthly_window_start, s.daily_used_micros, s.weekly_used_micros, s.monthly_used_micros,
         t.api_key_id`

// sqlKeyDaysSum sums the day rows d matching cond: requests, then keyTotalsColumns.
func sqlKeyDaysSum(cond string) string {
	f := " FILTER (WHERE " + cond + ")"
	out := "COALESCE(sum(d.requests)" + f + ", 0)::bigint"
	for _, c := range keyTotalsColumns {
		out += ", COALESCE(sum(d." + c + ")" + f + ", 0)::bigint"
	}
	return out
}

// sqlKeyLifetime lists the lifetime totals t after requests (grouped by t's key).
func sqlKeyLifetime() string {
	out := ""
	for _, c := range keyTotalsColumns {
		out += ", COALESCE(t." + c + ", 0)"
	}
	return out
}

// KeyUsage reads what the key whose SHA-256 hex hash is keyHash may know about itself at
// now; today and month are the starts of the current day and month of the billing time
// zone (their local dates pick the day rows). It is one statement on the key's rows and at
// most 32 rows of totals, whatever the number of the key's records.
func (s *Store) KeyUsage(ctx context.Context, keyHash string, now, today, month time.Time) (KeyUsage, error) {
	var k KeyUsage
	var sub struct {
		ID                  *int64
		StartsAt, ExpiresAt *time.Time
		KeySubscription
	}
	targets := []any{&k.KeyID, &k.KeyName, &k.UserID, &k.GroupID,
		&k.BillingMode, &k.ExpiresAt, &k.BalanceMicros, &k.QuotaMicros,
		&k.QuotaUsedMicros, &k.DailyLimitMicros, &k.WeeklyLimitMicros,
		&k.MonthlyLimitMicros,
		&sub.ID, &sub.StartsAt, &sub.ExpiresAt, &sub.DailyWindowStart, &sub.WeeklyWindowStart,
		&sub.MonthlyWindowStart, nullInt{&sub.DailyUsedMicros}, nullInt{&sub.WeeklyUsedMicros},
		nullInt{&sub.MonthlyUsedMicros}}
	targets = append(append(append(targets, k.Today.scanTargets()...), k.Month.scanTargets()...), k.Total.scanTargets()...)
	loc := billing.Location()
	err := s.Pool.QueryRow(ctx, sqlKeyUsage, keyHash, now, localDate(today, loc), localDate(month, loc)).Scan(targets...)
	if errors.Is(err, pgx.ErrNoRows) {
		return KeyUsage{}, ErrKeyUnknown
	}
	if err != nil {
		return KeyUsage{}, fmt.Errorf("reading usage of key: %w", err)
	}
	if sub.ID != nil {
		ks := sub.KeySubscription
		ks.ID, ks.StartsAt, ks.ExpiresAt = *sub.ID, *sub.StartsAt, *sub.ExpiresAt
		k.Subscription = &ks
	}
	return k, nil
}

// localDate is t's calendar date in loc, as the day column stores it.
func localDate(t time.Time, loc *time.Location) string { return t.In(loc).Format(time.DateOnly) }

// nullInt scans a nullable bigint into an int64, NULL as 0 (the columns of a subscription
// that the LEFT JOIN did not find).
type nullInt struct{ p *int64 }

func (n nullInt) ScanInt64(v pgtype.Int8) error {
	*n.p = v.Int64
	return nil
}
