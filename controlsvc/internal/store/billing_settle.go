package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
	// Locked in ascending id: the rows are locked in the order the sort returns them.
	sqlSettleLockUsers = `SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE`

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

	sqlSettleGroupModes = `SELECT id, billing_mode FROM groups WHERE id = ANY($1)`

	sqlSettleKeyQuotas = `SELECT id, quota_micros IS NOT NULL FROM api_keys WHERE id = ANY($1)`

	sqlSettleUser         = `UPDATE users SET balance_micros = balance_micros - $2 WHERE id = $1`
	sqlSettleSubscription = `
UPDATE subscriptions SET
    daily_window_start = $2, daily_used_micros = $3,
    weekly_window_start = $4, weekly_used_micros = $5,
    monthly_window_start = $6, monthly_used_micros = $7
WHERE id = $1`
	sqlSettleKey = `UPDATE api_keys SET quota_used_micros = quota_used_micros + $2 WHERE id = $1`
)

// settleBatch settles ins, sorted by user id, at now (docs/billing.md, "Reserve, then
// settle"): one round trip locks the users' rows (ascending id) and the subscriptions to
// charge and reads the groups' billing modes and the keys' quotas; the charges are then
// summed in memory and queued on b as one update per affected row: a user's balance, a
// subscription's windows, a key's quota_used (each in ascending id, so that concurrent
// batches take their locks in one order). A request is charged to the balance or to the
// current windows of the subscription (the hold's, else the one in force), and to its key's
// quota_used when the key has a quota now; a missing user, group or key reads as nothing,
// not an error. The results are in the order of ins.
func settleBatch(ctx context.Context, tx batchSender, ins []Settlement, b *pgx.Batch, now time.Time, loc *time.Location) ([]SettleResult, error) {
	rd := newSettleReads(ins)
	rows, err := rd.send(ctx, tx, now)
	if err != nil {
		return nil, fmt.Errorf("settling %d requests: %w", len(ins), err)
	}
	results := make([]SettleResult, len(ins))
	balance := map[int64]int64{}              // user → cost
	quota := map[int64]int64{}                // key → cost
	charged := map[int64]*subscriptionUsage{} // subscription id → its windows after the charges so far
	for i, in := range ins {
		st := rows.of(in)
		res := SettleResult{BillingMode: st.mode, ReservedMicros: st.heldMicros}
		sub := st.sub
		if sub != nil {
			if c, ok := charged[sub.id]; ok {
				sub = c // a later request of the same subscription charges on top
			}
		}
		if st.mode == BillingSubscription && sub != nil {
			id := sub.id
			res.SubscriptionID = &id
		}
		results[i] = res
		cost := max(in.CostMicros, 0)
		if cost == 0 {
			continue
		}
		switch {
		case st.mode == BillingSubscription && sub != nil:
			starts, used := chargeWindows(sub, cost, now, loc)
			next := &subscriptionUsage{id: sub.id, startsAt: sub.startsAt, used: used}
			for w := range starts {
				t := starts[w]
				next.starts[w] = &t
			}
			charged[sub.id] = next
		case st.mode == BillingBalance:
			balance[in.UserID] += cost
		}
		if st.keyHasQuota {
			quota[in.APIKeyID] += cost
		}
	}
	for _, id := range slices.Sorted(maps.Keys(balance)) {
		b.Queue(sqlSettleUser, id, balance[id])
	}
	for _, id := range slices.Sorted(maps.Keys(charged)) {
		s := charged[id]
		b.Queue(sqlSettleSubscription, id, *s.starts[0], s.used[0], *s.starts[1], s.used[1], *s.starts[2], s.used[2])
	}
	for _, id := range slices.Sorted(maps.Keys(quota)) {
		b.Queue(sqlSettleKey, id, quota[id])
	}
	return results, nil
}

// settleRows is what a settlement reads under its locks.
type settleRows struct {
	mode        string
	sub         *subscriptionUsage
	keyHasQuota bool  // the key has a quota now
	heldMicros  int64 // what the Redis hold held: recorded, released by package holds
}

// subscriptionRef is what names the subscription a request is charged to: its user and
// group, and the mode and subscription of its hold ("" and 0: none).
type subscriptionRef struct {
	user, group int64
	mode        string
	sub         int64
}

func refOf(in Settlement) subscriptionRef {
	r := subscriptionRef{user: in.UserID, group: in.GroupID}
	if in.Held != nil {
		r.mode, r.sub = in.Held.BillingMode, in.Held.SubscriptionID
	}
	return r
}

// settleReads is a batch's reads, each row once.
type settleReads struct {
	users, groups, keys []int64           // distinct, ascending
	subs                []subscriptionRef // distinct, in the order of the batch (ascending user)
}

func newSettleReads(ins []Settlement) *settleReads {
	users, groups, keys := map[int64]bool{}, map[int64]bool{}, map[int64]bool{}
	seen := map[subscriptionRef]bool{}
	rd := &settleReads{}
	for _, in := range ins {
		users[in.UserID], groups[in.GroupID], keys[in.APIKeyID] = true, true, true
		if r := refOf(in); !seen[r] {
			seen[r] = true
			rd.subs = append(rd.subs, r)
		}
	}
	rd.users, rd.groups, rd.keys = slices.Sorted(maps.Keys(users)), slices.Sorted(maps.Keys(groups)), slices.Sorted(maps.Keys(keys))
	return rd
}

// readRows is what a batch's reads found.
type readRows struct {
	subs       map[subscriptionRef]*subscriptionUsage // nil: no subscription to charge
	groupModes map[int64]string
	keyQuota   map[int64]bool
}

// send locks and reads in one round trip: the users first, then the subscriptions (the
// locking order of every settlement), then the groups and keys, which it only reads.
func (rd *settleReads) send(ctx context.Context, tx batchSender, now time.Time) (*readRows, error) {
	b := &pgx.Batch{}
	b.Queue(sqlSettleLockUsers, rd.users)
	for _, r := range rd.subs {
		b.Queue(sqlSettleLockSubscription, r.user, r.group, now, r.mode, r.sub)
	}
	b.Queue(sqlSettleGroupModes, rd.groups)
	b.Queue(sqlSettleKeyQuotas, rd.keys)
	br := tx.SendBatch(ctx, b)
	out, err := rd.scan(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return out, err
}

func (rd *settleReads) scan(br pgx.BatchResults) (*readRows, error) {
	out := &readRows{subs: map[subscriptionRef]*subscriptionUsage{}, groupModes: map[int64]string{}, keyQuota: map[int64]bool{}}
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("locking users: %w", err)
	}
	for _, r := range rd.subs {
		var sub subscriptionUsage
		ok, err := rowFound(br.QueryRow().Scan(&sub.id, &sub.startsAt, &sub.starts[0], &sub.used[0], &sub.starts[1],
			&sub.used[1], &sub.starts[2], &sub.used[2]))
		if err != nil {
			return nil, fmt.Errorf("locking subscription: %w", err)
		}
		if ok {
			out.subs[r] = &sub
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("reading billing modes: %w", err)
	}
	var id int64
	var mode string
	if _, err := pgx.ForEachRow(rows, []any{&id, &mode}, func() error { out.groupModes[id] = mode; return nil }); err != nil {
		return nil, fmt.Errorf("reading billing modes: %w", err)
	}
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("reading key quotas: %w", err)
	}
	var has bool
	if _, err := pgx.ForEachRow(rows, []any{&id, &has}, func() error { out.keyQuota[id] = has; return nil }); err != nil {
		return nil, fmt.Errorf("reading key quotas: %w", err)
	}
	return out, nil
}

// of is what in's settlement read: the mode it was admitted under (its hold's), else its
// group's now; an unknown group bills the balance (the column's default).
func (r *readRows) of(in Settlement) *settleRows {
	st := &settleRows{sub: r.subs[refOf(in)], keyHasQuota: r.keyQuota[in.APIKeyID]}
	switch mode := r.groupModes[in.GroupID]; {
	case in.Held != nil && in.Held.BillingMode != "":
		st.mode, st.heldMicros = in.Held.BillingMode, in.Held.AmountMicros
	case mode != "":
		st.mode = mode
	default:
		st.mode = BillingBalance
	}
	return st
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
