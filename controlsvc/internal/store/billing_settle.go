package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

// Settlement is the actual cost of one finished request, settled against its reservation.
type Settlement struct {
	RequestID  string
	UserID     int64
	APIKeyID   int64
	GroupID    int64
	CostMicros int64 // negative counts as 0
	// Held is the request's hold in Redis (package holds), read by the caller; nil = none.
	// Without a reservation row it names the billing mode and subscription charged.
	Held *HeldRef
}

// HeldRef is a request's hold in Redis as settlement uses it (docs/billing.md, "Reserve,
// then settle"): its holder, the
// billing mode and subscription it was admitted under, and the amount held.
// Settlement only ever uses a hold of the record's own user, key and group (WriteUsageBatch
// refuses the others).
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
	ReservedMicros int64  // the amount the request's reservation held (0: none left)
}

const (
	sqlSettleLockUser = `SELECT id FROM users WHERE id = $1 FOR UPDATE`

	// The subscription to charge, locked: the reservation's, else (no reservation, the
	// group bills by subscription) the user's subscription in force at $4. Read before the
	// reservation is deleted, in the same round trip. Only a reservation of this user ($2),
	// group ($3) and key ($5) counts: another holder's is never charged nor released here.
	// Without one, the Redis hold's mode ($6, '' = none) and subscription ($7, 0 = none) do.
	sqlSettleLockSubscription = `
WITH r AS (SELECT billing_mode, subscription_id FROM reservations
           WHERE request_id = $1 AND user_id = $2 AND group_id = $3 AND api_key_id = $5),
     m AS (SELECT COALESCE((SELECT billing_mode FROM r), NULLIF($6, ''),
                           (SELECT billing_mode FROM groups WHERE id = $3)) AS mode)
SELECT s.id, s.starts_at, s.daily_window_start, s.daily_used_micros, s.weekly_window_start,
       s.weekly_used_micros, s.monthly_window_start, s.monthly_used_micros, s.reserved_micros
FROM subscriptions s
WHERE (SELECT mode FROM m) = 'subscription'
  AND s.id = COALESCE((SELECT subscription_id FROM r), NULLIF($7::bigint, 0),
      (SELECT x.id FROM subscriptions x
       WHERE x.user_id = $2 AND x.group_id = $3 AND x.status = 'active' AND x.starts_at <= $4 AND x.expires_at > $4
       ORDER BY x.starts_at, x.id LIMIT 1))
FOR UPDATE OF s`

	sqlDeleteReservation = `
DELETE FROM reservations WHERE request_id = $1 AND user_id = $2 AND api_key_id = $3 AND group_id = $4
RETURNING billing_mode, subscription_id, key_quota, amount_micros`

	sqlGroupBillingMode = `SELECT billing_mode FROM groups WHERE id = $1`

	sqlKeyHasQuota = `SELECT quota_micros IS NOT NULL FROM api_keys WHERE id = $1`

	// Releases never drive a reserved sum below 0: a CHECK violation would fail the whole
	// report batch again on every retry.
	sqlSettleUser = `
UPDATE users SET balance_micros = balance_micros - $2, reserved_micros = GREATEST(reserved_micros - $3, 0)
WHERE id = $1`
	sqlSettleSubscription = `
UPDATE subscriptions SET
    daily_window_start = $2, daily_used_micros = $3,
    weekly_window_start = $4, weekly_used_micros = $5,
    monthly_window_start = $6, monthly_used_micros = $7,
    reserved_micros = GREATEST(reserved_micros - $8, 0)
WHERE id = $1`
	sqlSettleKey = `
UPDATE api_keys SET quota_used_micros = quota_used_micros + $2,
    quota_reserved_micros = GREATEST(quota_reserved_micros - $3, 0)
WHERE id = $1`
)

// SettleInTx settles one finished request inside the caller's transaction (the usage batch
// writer's, for a record it inserted): it deletes the request's reservation and releases
// its amount from the reserved sums, and charges CostMicros to the user's balance or to the
// current windows of the subscription (the reservation's, else the one in force), and to
// the key's quota_used if the key has a quota. The billing mode and subscription are the
// reservation's; the reservation is read and deleted under the user's lock, in the same
// transaction as the charge, so it is gone exactly when the charge that replaces it is
// made. With no reservation (it expired and was swept, or never existed) the cost is
// charged by the group's billing mode as it is now; a missing user, group or key is
// skipped, not an error.
//
// Only a reservation of in's user, key and group is settled: the caller refuses a record
// whose request holds another holder's (WriteUsageBatch does, in the same transaction), and
// should one slip through it is neither charged nor released here.
//
// It locks the user row first. A transaction that settles several requests must settle
// them in ascending user id, so concurrent batches lock users in one order.
func SettleInTx(ctx context.Context, tx pgx.Tx, in Settlement) (SettleResult, error) {
	return settleInTx(ctx, tx, in, time.Now(), billing.Location())
}

func settleInTx(ctx context.Context, tx pgx.Tx, in Settlement, now time.Time, loc *time.Location) (SettleResult, error) {
	st, err := readSettleRows(ctx, tx, in, now)
	if err != nil {
		return SettleResult{}, fmt.Errorf("settling request %s: %w", in.RequestID, err)
	}
	b := &pgx.Batch{}
	res := queueSettleWrites(b, in, st, now, loc)
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return SettleResult{}, fmt.Errorf("settling request %s: charging %d micros: %w", in.RequestID, max(in.CostMicros, 0), err)
		}
	}
	return res, nil
}

// queueSettleWrites queues on b the charge of a settlement whose rows st were read under
// their locks, and returns how the request is settled. The writes must run before anything
// else reads the same rows: a batch runs its statements in order, so a later settlement's
// reads may follow them in the same batch (WriteUsageBatch pipelines that way).
func queueSettleWrites(b *pgx.Batch, in Settlement, st *settleRows, now time.Time, loc *time.Location) SettleResult {
	cost := max(in.CostMicros, 0)
	res := SettleResult{BillingMode: st.mode, ReservedMicros: st.amount + st.heldMicros}
	if st.mode == BillingSubscription && st.sub != nil {
		res.SubscriptionID = &st.sub.id
	}
	switch {
	case st.mode == BillingSubscription && st.sub != nil && (cost != 0 || st.amount != 0):
		starts, used := chargeWindows(st.sub, cost, now, loc)
		b.Queue(sqlSettleSubscription, st.sub.id, starts[0], used[0], starts[1], used[1], starts[2], used[2], st.amount)
	case st.mode == BillingBalance && (cost != 0 || st.amount != 0):
		b.Queue(sqlSettleUser, in.UserID, cost, st.amount)
	}
	keyCharge := int64(0)
	if st.keyHasQuota {
		keyCharge = cost
	}
	if keyRelease := st.keyRelease(); keyCharge != 0 || keyRelease != 0 {
		b.Queue(sqlSettleKey, in.APIKeyID, keyCharge, keyRelease)
	}
	return res
}

// settleRows is what a settlement reads under its locks.
type settleRows struct {
	mode        string
	sub         *subscriptionUsage
	reserved    bool // a reservation was deleted
	keyQuota    bool // the reservation held its amount on the key's quota too
	amount      int64
	keyHasQuota bool  // the key has a quota now
	heldMicros  int64 // what the Redis hold held (no reservation row): recorded, never released here
}

// keyRelease is the amount the reservation held on the key's quota.
func (s *settleRows) keyRelease() int64 {
	if s.keyQuota {
		return s.amount
	}
	return 0
}

// readSettleRows locks the user, locks the subscription to charge, deletes the reservation
// and reads the group's mode and whether the key has a quota, in one round trip.
func readSettleRows(ctx context.Context, tx pgx.Tx, in Settlement, now time.Time) (*settleRows, error) {
	b := &pgx.Batch{}
	queueSettleReads(b, in, now)
	br := tx.SendBatch(ctx, b)
	st, err := scanSettleRows(br, in.Held)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// queueSettleReads queues the reads of readSettleRows, in their locking order.
func queueSettleReads(b *pgx.Batch, in Settlement, now time.Time) {
	b.Queue(sqlSettleLockUser, in.UserID)
	mode, sub := "", int64(0)
	if in.Held != nil {
		mode, sub = in.Held.BillingMode, in.Held.SubscriptionID
	}
	b.Queue(sqlSettleLockSubscription, in.RequestID, in.UserID, in.GroupID, now, in.APIKeyID, mode, sub)
	b.Queue(sqlDeleteReservation, in.RequestID, in.UserID, in.APIKeyID, in.GroupID)
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
		&sub.used[1], &sub.starts[2], &sub.used[2], &sub.reserved))
	if err != nil {
		return nil, fmt.Errorf("locking subscription: %w", err)
	}
	if ok {
		st.sub = &sub
	}
	var resMode string
	var resSub *int64
	if st.reserved, err = rowFound(br.QueryRow().Scan(&resMode, &resSub, &st.keyQuota, &st.amount)); err != nil {
		return nil, fmt.Errorf("deleting reservation: %w", err)
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
	case st.reserved:
		st.mode = resMode
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
