package holds

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fixture is one user with one key in one group, in PostgreSQL, and Holds on a fresh Redis.
type fixture struct {
	st               *store.Store
	rdb              *redis.Client
	h                *Holds
	user, key, group int64
	mode             string
	loads            atomic.Int64
}

type seed struct {
	balance    int64
	quota      *int64
	mode       string   // "" = balance
	limits     []*int64 // daily, weekly, monthly (subscription mode)
	noSub      bool     // subscription mode without a subscription
	keyExpires *time.Time
}

func newFixture(t *testing.T, s seed) *fixture {
	t.Helper()
	st := storetest.Open(t)
	rdb := testenv.RedisClient(t, testenv.RedisURL(t))
	f := &fixture{st: st, rdb: rdb, mode: s.mode}
	if f.mode == "" {
		f.mode = store.BillingBalance
	}
	f.h = New(rdb, st, time.Hour, time.Hour)
	f.h.onLoad = func() { f.loads.Add(1) }
	limits := append(append([]*int64{}, s.limits...), nil, nil, nil)
	f.user = f.id(t, `INSERT INTO users (name, balance_micros) VALUES ('u', $1) RETURNING id`, s.balance)
	f.group = f.id(t, `INSERT INTO groups (name, platform, billing_mode, daily_limit_micros, weekly_limit_micros,
		monthly_limit_micros) VALUES ('g', 'openai', $1, $2, $3, $4) RETURNING id`, f.mode, limits[0], limits[1], limits[2])
	f.key = f.id(t, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix, quota_micros, expires_at)
		VALUES ($1, $2, 'h', 'sk-pg', $3, $4) RETURNING id`, f.user, f.group, s.quota, s.keyExpires)
	if f.mode == store.BillingSubscription && !s.noSub {
		f.exec(t, `INSERT INTO subscriptions (user_id, group_id, starts_at, expires_at)
			VALUES ($1, $2, now() - interval '1 hour', now() + interval '30 days')`, f.user, f.group)
	}
	if err := f.h.MarkEpoch(t.Context()); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) id(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var id int64
	if err := f.st.Pool.QueryRow(context.Background(), sql, args...).Scan(&id); err != nil {
		t.Fatalf("seeding %q: %v", sql, err)
	}
	return id
}

func (f *fixture) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := f.st.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func (f *fixture) req(id string, amount, need int64) Request {
	return Request{RequestID: id, UserID: f.user, KeyID: f.key, GroupID: f.group, Mode: f.mode,
		AmountMicros: amount, MinAmountMicros: need}
}

// settle charges cost in PostgreSQL as settlement does (the balance, or the subscription's
// windows, and the key's quota), then applies it to the holds.
func (f *fixture) settle(t *testing.T, id string, cost int64) {
	t.Helper()
	if f.mode == store.BillingSubscription {
		f.exec(t, `UPDATE subscriptions SET daily_used_micros = daily_used_micros + $2, daily_window_start = COALESCE(daily_window_start, now()),
			weekly_used_micros = weekly_used_micros + $2, weekly_window_start = COALESCE(weekly_window_start, now()),
			monthly_used_micros = monthly_used_micros + $2, monthly_window_start = COALESCE(monthly_window_start, now())
			WHERE user_id = $1`, f.user, cost)
	} else {
		f.exec(t, `UPDATE users SET balance_micros = balance_micros - $2 WHERE id = $1`, f.user, cost)
	}
	f.exec(t, `UPDATE api_keys SET quota_used_micros = quota_used_micros + $2 WHERE id = $1 AND quota_micros IS NOT NULL`, f.key, cost)
	if err := f.h.Settle(t.Context(), []Charge{{RequestID: id, UserID: f.user, KeyID: f.key, GroupID: f.group, CostMicros: cost}}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) held(t *testing.T) Held {
	t.Helper()
	h, err := f.h.HeldOf(t.Context(), f.user)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (f *fixture) balance(t *testing.T) int64 {
	t.Helper()
	return f.id(t, `SELECT balance_micros FROM users WHERE id = $1`, f.user)
}

func ptr(v int64) *int64 { return &v }
