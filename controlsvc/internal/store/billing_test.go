package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// billSetup describes one user, group and key to seed.
type billSetup struct {
	balance    int64
	mode       string  // "" = balance
	limits     []any   // daily, weekly, monthly limit micros (nil entries = unlimited)
	maxReserve int64   // 0 = default
	quota      *int64  // key quota
	keyExpires *string // RFC 3339
}

type billFixture struct {
	st                *Store
	user, group, key  int64
	sub               int64 // set by withSubscription
	subscriptionStart time.Time
}

func billID(t *testing.T, st *Store, sql string, args ...any) int64 {
	t.Helper()
	var id int64
	if err := st.Pool.QueryRow(context.Background(), sql, args...).Scan(&id); err != nil {
		t.Fatalf("seeding %q: %v", sql, err)
	}
	return id
}

func billExec(t *testing.T, st *Store, sql string, args ...any) {
	t.Helper()
	if _, err := st.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func seedBill(t *testing.T, st *Store, s billSetup) *billFixture {
	t.Helper()
	mode := s.mode
	if mode == "" {
		mode = BillingBalance
	}
	limits := s.limits
	for len(limits) < 3 {
		limits = append(limits, nil)
	}
	maxReserve := s.maxReserve
	if maxReserve == 0 {
		maxReserve = DefaultMaxReserveMicros
	}
	f := &billFixture{st: st}
	f.user = billID(t, st, `INSERT INTO users (name, balance_micros) VALUES ('u', $1) RETURNING id`, s.balance)
	f.group = billID(t, st, `INSERT INTO groups (name, platform, billing_mode, daily_limit_micros, weekly_limit_micros,
		monthly_limit_micros, max_reserve_micros) VALUES ('g' || nextval('groups_id_seq'), 'openai', $1, $2, $3, $4, $5) RETURNING id`,
		mode, limits[0], limits[1], limits[2], maxReserve)
	f.key = billID(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix, quota_micros, expires_at)
		VALUES ($1, $2, 'h' || nextval('api_keys_id_seq'), 'sk-pg', $3, $4::timestamptz) RETURNING id`,
		f.user, f.group, s.quota, s.keyExpires)
	return f
}

// withSubscription adds an active subscription from start for 90 days.
func (f *billFixture) withSubscription(t *testing.T, start time.Time) *billFixture {
	t.Helper()
	f.sub = billID(t, f.st, `INSERT INTO subscriptions (user_id, group_id, starts_at, expires_at)
		VALUES ($1, $2, $3, $4) RETURNING id`, f.user, f.group, start, start.Add(90*24*time.Hour))
	f.subscriptionStart = start
	return f
}

// held is the Redis hold (package holds) of a request admitted now under the group's
// billing mode and, in subscription mode, the fixture's subscription.
func (f *billFixture) held(t *testing.T, amount int64) *HeldRef {
	t.Helper()
	var mode string
	if err := f.st.Pool.QueryRow(context.Background(), `SELECT billing_mode FROM groups WHERE id = $1`, f.group).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	h := &HeldRef{UserID: f.user, KeyID: f.key, GroupID: f.group, BillingMode: mode, AmountMicros: amount}
	if mode == BillingSubscription {
		h.SubscriptionID = f.sub
	}
	return h
}

// settleInTx settles one request in tx at now as WriteUsageBatch's settleAll does (the
// same reads and writes), with the clock and zone under test.
func settleInTx(ctx context.Context, tx pgx.Tx, in Settlement, now time.Time, loc *time.Location) (SettleResult, error) {
	b := &pgx.Batch{}
	res, err := settleBatch(ctx, tx, []Settlement{in}, b, now, loc)
	if err != nil {
		return SettleResult{}, err
	}
	if b.Len() > 0 {
		err = tx.SendBatch(ctx, b).Close()
	}
	return res[0], err
}

// settle settles req at cost; held is its Redis hold (nil = none).
func (f *billFixture) settle(t *testing.T, req string, cost int64, held *HeldRef, now time.Time, loc *time.Location) SettleResult {
	t.Helper()
	var res SettleResult
	err := f.st.WithTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		res, err = settleInTx(context.Background(), tx, Settlement{RequestID: req, UserID: f.user, APIKeyID: f.key,
			GroupID: f.group, CostMicros: cost, Held: held}, now, loc)
		return err
	})
	if err != nil {
		t.Fatalf("settling %s: %v", req, err)
	}
	return res
}

// sums reads every money column settlement touches.
type billSums struct {
	balance, quotaUsed                    int64
	daily, weekly, monthly                int64
	dailyStart, weeklyStart, monthlyStart *time.Time
}

func (f *billFixture) sums(t *testing.T) billSums {
	t.Helper()
	var s billSums
	err := f.st.Pool.QueryRow(context.Background(), `
SELECT u.balance_micros, k.quota_used_micros, COALESCE(s.daily_used_micros, 0), COALESCE(s.weekly_used_micros, 0),
       COALESCE(s.monthly_used_micros, 0), s.daily_window_start, s.weekly_window_start, s.monthly_window_start
FROM users u JOIN api_keys k ON k.id = $2 LEFT JOIN subscriptions s ON s.id = $3
WHERE u.id = $1`, f.user, f.key, f.sub).Scan(&s.balance, &s.quotaUsed, &s.daily, &s.weekly, &s.monthly,
		&s.dailyStart, &s.weeklyStart, &s.monthlyStart)
	if err != nil {
		t.Fatalf("reading sums: %v", err)
	}
	return s
}

var billNow = time.Date(2024, 10, 27, 12, 0, 0, 0, time.UTC) // a 25-hour day in Berlin

func TestSettleBalance(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	tests := []struct {
		name        string
		setup       billSetup
		held        int64 // -1 = no hold
		cost        int64
		wantBalance int64
		wantQuota   int64
		wantHeld    int64
	}{
		{name: "cost below the hold", setup: billSetup{balance: 10_000}, held: 3000, cost: 1234,
			wantBalance: 10_000 - 1234, wantQuota: 0, wantHeld: 3000},
		{name: "cost above the hold (overrun)", setup: billSetup{balance: 1000, quota: ptr(int64(5000))}, held: 1000, cost: 1500,
			wantBalance: -500, wantQuota: 1500, wantHeld: 1000},
		{name: "failed request settles at 0", setup: billSetup{balance: 1000, quota: ptr(int64(5000))}, held: 800, cost: 0,
			wantBalance: 1000, wantQuota: 0, wantHeld: 800},
		{name: "with key quota", setup: billSetup{balance: 1000, quota: ptr(int64(5000))}, held: 800, cost: 700,
			wantBalance: 300, wantQuota: 700, wantHeld: 800},
		{name: "no hold (swept) still charges", setup: billSetup{balance: 1000, quota: ptr(int64(5000))}, held: -1, cost: 250,
			wantBalance: 750, wantQuota: 250},
		{name: "key without quota: quota_used stays", setup: billSetup{balance: 1000}, held: -1, cost: 250,
			wantBalance: 750, wantQuota: 0},
		{name: "negative cost counts as 0", setup: billSetup{balance: 1000}, held: 100, cost: -7,
			wantBalance: 1000, wantHeld: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedBill(t, st, tt.setup)
			var held *HeldRef
			if tt.held >= 0 {
				held = f.held(t, tt.held)
			}
			res := f.settle(t, "req-"+tt.name, tt.cost, held, billNow, time.UTC)
			if res.BillingMode != BillingBalance || res.SubscriptionID != nil || res.ReservedMicros != tt.wantHeld {
				t.Errorf("SettleResult = %+v, want balance mode, held %d", res, tt.wantHeld)
			}
			s := f.sums(t)
			if s.balance != tt.wantBalance || s.quotaUsed != tt.wantQuota {
				t.Errorf("after settling: %+v, want balance %d, quota used %d", s, tt.wantBalance, tt.wantQuota)
			}
		})
	}
}

func TestSettleToleratesUnknownRows(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	err := st.WithTx(context.Background(), func(tx pgx.Tx) error {
		res, err := settleInTx(context.Background(), tx, Settlement{RequestID: "ghost", UserID: 91, APIKeyID: 92,
			GroupID: 93, CostMicros: 500}, time.Now(), time.UTC)
		if err == nil && (res.BillingMode != BillingBalance || res.SubscriptionID != nil || res.ReservedMicros != 0) {
			t.Errorf("SettleResult = %+v, want balance mode and nothing held", res)
		}
		return err
	})
	if err != nil {
		t.Fatalf("settling for rows that do not exist: %v", err)
	}
}

func TestSettleUsesTheHoldsMode(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	f := seedBill(t, st, billSetup{balance: 1000})
	held := f.held(t, 400)
	// The operator switches the group to subscriptions while the request runs: it was
	// admitted against the balance, so it is settled there.
	billExec(t, st, `UPDATE groups SET billing_mode = 'subscription' WHERE id = $1`, f.group)
	if res := f.settle(t, "r", 300, held, billNow, time.UTC); res.BillingMode != BillingBalance || res.ReservedMicros != 400 {
		t.Errorf("SettleResult = %+v, want balance", res)
	}
	if s := f.sums(t); s.balance != 700 {
		t.Errorf("sums = %+v", s)
	}
	// Without a hold the group's mode now applies: no subscription, nothing charged.
	res := f.settle(t, "late", 50, nil, billNow, time.UTC)
	if res.BillingMode != BillingSubscription || res.SubscriptionID != nil {
		t.Errorf("late SettleResult = %+v, want subscription mode without subscription", res)
	}
	if s := f.sums(t); s.balance != 700 || s.quotaUsed != 0 {
		t.Errorf("sums after the late settlement = %+v, want the balance untouched", s)
	}
}

// The key's quota is charged as the key is at settlement, whatever it was at admission.
func TestSettleKeyQuotaChangedInFlight(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	tests := []struct {
		name     string
		quota    *int64
		newQuota string // SQL value set between admission and settlement
		wantUsed int64
	}{
		{"quota removed", ptr(int64(10_000)), "NULL", 0},
		{"quota added", nil, "10000", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedBill(t, st, billSetup{balance: 10_000, quota: tt.quota})
			held := f.held(t, 600)
			billExec(t, st, `UPDATE api_keys SET quota_micros = `+tt.newQuota+` WHERE id = $1`, f.key)
			f.settle(t, "r", 400, held, billNow, time.UTC)
			if s := f.sums(t); s.quotaUsed != tt.wantUsed || s.balance != 9600 {
				t.Errorf("after settling: %+v, want quota used %d", s, tt.wantUsed)
			}
		})
	}
}
