package store

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Settlement is the actual cost of one finished request (docs/billing.md, "Reserve, then
// settle"), charged in the usage batch writer's transaction for a record it inserted.
type Settlement struct {
	RequestID  string
	UserID     int64
	APIKeyID   int64
	GroupID    int64
	CostMicros int64 // negative counts as 0
	// Held is the request's hold in Redis (package holds), read by the caller; nil = none.
	// It names the billing mode and subscription the request was admitted under.
	Held *HeldRef
}

// HeldRef is a request's hold in Redis as settlement uses it (docs/billing.md, "Reserve,
// then settle"): its holder, the billing mode and subscription it was admitted under, and
// the amount held. Settlement only ever uses a hold of the record's own user, key and group
// (WriteUsageBatch refuses the others).
type HeldRef struct {
	UserID         int64
	KeyID          int64
	GroupID        int64
	BillingMode    string
	SubscriptionID int64 // 0 = none
	AmountMicros   int64
}

// SettleResult says how a settlement was charged.
type SettleResult struct {
	BillingMode    string // BillingBalance | BillingSubscription
	SubscriptionID *int64 // the subscription charged, if any
	ReservedMicros int64  // the amount the request's hold held (0: none)
}

const (
	sqlSettleLockUser = `SELECT id FROM users WHERE id = $1 FOR UPDATE`

	// The subscription to charge, locked: the hold's mode ($4, '' = none) and subscription
	// ($5, 0 = none), else (no hold, the group bills by subscription) the user's
	// subscription in force at $3.
	sqlSettleLockSubscription = `
WITH m AS (SELECT COALESCE(NULLIF($4, ''), (SELECT billing_mode FROM groups WHERE id = $2)) AS mode)
SELECT s.id, s.starts_at, s.daily_window_start, s.daily_used_micros, s.weekly_window_start,
       s.weekly_used_micros, s.monthly_window_start, s.monthly_used_micros
FROM subscriptions s
WHERE (SELECT mode FROM m) = 'subscription'
  AND s.id = COALESCE(NULLIF($5::bigint, 0),
      (SELECT x.id FROM subscriptions x
       WHERE x.user_id = $1 AND x.group_id = $2 AND x.status = 'active' AND x.starts_at <= $3 AND x.expires_at > $3
       ORDER BY x.starts_at, x.id LIMIT 1))
FOR UPDATE OF s`

	sqlGroupBillingMode = `SELECT billing_mode FROM groups WHERE id = $1`

	sqlKeyHasQuota = `SELECT quota_micros IS NOT NULL FROM api_keys WHERE id = $1`

	sqlSettleUser         = `UPDATE users SET balance_micros = balance_micros - $2 WHERE id = $1`
	sqlSettleSubscription = `
UPDATE subscriptions SET
    daily_window_start = $2, daily_used_micros = $3,
    weekly_window_start = $4, weekly_used_micros = $5,
    monthly_window_start = $6, monthly_used_micros = $7
WHERE id = $1`
	sqlSettleKey = `UPDATE api_keys SET quota_used_micros = quota_used_micros + $2 WHERE id = $1`
)

// queueSettleWrites queues on b the charge of a settlement whose rows st were read under
// their locks, and returns how the request is settled: CostMicros to the user's balance or
// to the current windows of the subscription (the hold's, else the one in force), and to
// the key's quota_used if the key has a quota now. The writes must run before anything else
// reads the same rows: a batch runs its statements in order, so a later settlement's reads
// may follow them in the same batch (WriteUsageBatch pipelines that way).
func queueSettleWrites(b *pgx.Batch, in Settlement, st *settleRows, now time.Time, loc *time.Location) SettleResult {
	cost := max(in.CostMicros, 0)
	res := SettleResult{BillingMode: st.mode, ReservedMicros: st.heldMicros}
	if st.mode == BillingSubscription && st.sub != nil {
		res.SubscriptionID = &st.sub.id
	}
	if cost == 0 {
		return res
	}
	switch {
	case st.mode == BillingSubscription && st.sub != nil:
		starts, used := chargeWindows(st.sub, cost, now, loc)
		b.Queue(sqlSettleSubscription, st.sub.id, starts[0], used[0], starts[1], used[1], starts[2], used[2])
	case st.mode == BillingBalance:
		b.Queue(sqlSettleUser, in.UserID, cost)
	}
	if st.keyHasQuota {
		b.Queue(sqlSettleKey, in.APIKeyID, cost)
	}
	return res
}

// settleRows is what a settlement reads under its locks.
type settleRows struct {
	mode        string
	sub         *subscriptionUsage
	keyHasQuota bool  // the key has a quota now
	heldMicros  int64 // what the Redis hold held: recorded, released by package holds
}

// queueSettleReads queues a settlement's reads, in their locking order (the user row
// first, then the subscription: a transaction that settles several requests settles them
// in ascending user id, so concurrent batches lock users in one order); a missing user,
// group or key reads as nothing, not an error.
func queueSettleReads(b *pgx.Batch, in Settlement, now time.Time) {
	b.Queue(sqlSettleLockUser, in.UserID)
	mode, sub := "", int64(0)
	if in.Held != nil {
		mode, sub = in.Held.BillingMode, in.Held.SubscriptionID
	}
	b.Queue(sqlSettleLockSubscription, in.UserID, in.GroupID, now, mode, sub)
	b.Queue(sqlGroupBillingMode, in.GroupID)
	b.Queue(sqlKeyHasQuota, in.APIKeyID)
}

func scanSettleRows(br pgx.BatchResults, held *HeldRef) (*settleRows, error) {
	st := &settleRows{}
	var id int64
	if _, err := rowFound(br.QueryRow().Scan(&id)); err != nil {
		return nil, fmt.Errorf("locking user: %w", err)
	}
	var sub subscriptionUsage
	ok, err := rowFound(br.QueryRow().Scan(&sub.id, &sub.startsAt, &sub.starts[0], &sub.used[0], &sub.starts[1],
		&sub.used[1], &sub.starts[2], &sub.used[2]))
	if err != nil {
		return nil, fmt.Errorf("locking subscription: %w", err)
	}
	if ok {
		st.sub = &sub
	}
	var groupMode string
	if _, err := rowFound(br.QueryRow().Scan(&groupMode)); err != nil {
		return nil, fmt.Errorf("reading billing mode: %w", err)
	}
	if _, err := rowFound(br.QueryRow().Scan(&st.keyHasQuota)); err != nil {
		return nil, fmt.Errorf("reading key quota: %w", err)
	}
	// The mode the request was admitted under, else the group's now; an unknown group
	// bills the balance (the column's default).
	switch {
	case held != nil && held.BillingMode != "":
		st.mode, st.heldMicros = held.BillingMode, held.AmountMicros
	case groupMode != "":
		st.mode = groupMode
	default:
		st.mode = BillingBalance
	}
	return st, nil
}

// chargeWindows adds cost to each current window of sub: a window whose stored usage
// belongs to an older window restarts from cost at the current window's start.
func chargeWindows(sub *subscriptionUsage, cost int64, now time.Time, loc *time.Location) (starts [3]time.Time, used [3]int64) {
	windows := sub.windows(now, loc)
	for i, w := range windows {
		if sub.starts[i] == nil || sub.starts[i].Before(w.Start) {
			starts[i], used[i] = w.Start, cost
			continue
		}
		starts[i], used[i] = *sub.starts[i], sub.used[i]+cost
	}
	return starts, used
}
