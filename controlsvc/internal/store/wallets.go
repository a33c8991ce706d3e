package store

import (
	"context"
	"fmt"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// Wallets are what admission holds money against (docs/billing.md, "Reserve, then settle"):
// PostgreSQL is their source of truth, package holds keeps a copy of them in Redis next to
// the holds of the requests in flight. LoadWallets is the read that copy is loaded by.

// WalletState is the money state of one (user, key, group) as PostgreSQL knows it.
type WalletState struct {
	BalanceMicros int64
	// QuotaMicros is the key's quota; nil = none. QuotaUsedMicros is what it has used.
	QuotaMicros     *int64
	QuotaUsedMicros int64
	BillingMode     string // the group's
	// Subscription is the user's subscription in force in the group (subscription mode);
	// nil = none.
	Subscription *WalletSubscription
}

// WalletSubscription is a subscription's current windows: limits (nil = unlimited), the
// usage counted in the current window (billing.UsedNow), and the windows' ends.
type WalletSubscription struct {
	ID        int64
	ExpiresAt time.Time
	Limits    [3]*int64 // daily, weekly, monthly
	Used      [3]int64
	Ends      [3]time.Time
}

// sqlLoadWallets reads the user's balance, the key's quota, the group's mode and window
// limits and the subscription in force at $4, without locks: the copy it loads is guarded
// by a load token in Redis (package holds), not by row locks.
const sqlLoadWallets = `
SELECT u.balance_micros, k.quota_micros, k.quota_used_micros, g.billing_mode,
       g.daily_limit_micros, g.weekly_limit_micros, g.monthly_limit_micros,
       s.id, s.starts_at, s.expires_at, s.daily_window_start, s.daily_used_micros, s.weekly_window_start,
       s.weekly_used_micros, s.monthly_window_start, s.monthly_used_micros
FROM users u
JOIN api_keys k ON k.id = $2 AND k.user_id = u.id
JOIN groups g ON g.id = $3
LEFT JOIN LATERAL (
    SELECT * FROM subscriptions x
    WHERE x.user_id = u.id AND x.group_id = g.id AND g.billing_mode = 'subscription'
      AND x.status = 'active' AND x.starts_at <= $4 AND x.expires_at > $4
    ORDER BY x.starts_at, x.id LIMIT 1) s ON true
WHERE u.id = $1`

// LoadWallets reads the money state admission checks for one user, key and group at now.
// A missing user, key (of that user) or group is a *NotFoundError.
func (s *Store) LoadWallets(ctx context.Context, userID, keyID, groupID int64, now time.Time) (WalletState, error) {
	var (
		w        WalletState
		limits   [3]*int64
		subID    *int64
		startsAt *time.Time
		expires  *time.Time
		starts   [3]*time.Time
		used     [3]*int64
	)
	err := s.Pool.QueryRow(ctx, sqlLoadWallets, userID, keyID, groupID, now).Scan(&w.BalanceMicros, &w.QuotaMicros,
		&w.QuotaUsedMicros, &w.BillingMode, &limits[0], &limits[1], &limits[2], &subID, &startsAt, &expires,
		&starts[0], &used[0], &starts[1], &used[1], &starts[2], &used[2])
	if ok, err := rowFound(err); err != nil {
		return WalletState{}, fmt.Errorf("loading wallets of user %d: %w", userID, err)
	} else if !ok {
		return WalletState{}, &NotFoundError{Resource: "api key", ID: keyID}
	}
	if subID == nil {
		return w, nil
	}
	sub := &subscriptionUsage{id: *subID, startsAt: *startsAt, starts: starts}
	for i := range used {
		sub.used[i] = *used[i]
	}
	windows := sub.windows(now, billing.Location())
	ws := &WalletSubscription{ID: *subID, ExpiresAt: *expires, Limits: limits}
	for i, win := range windows {
		ws.Used[i] = billing.UsedNow(sub.used[i], sub.starts[i], win)
		ws.Ends[i] = win.End
	}
	w.Subscription = ws
	return w, nil
}
