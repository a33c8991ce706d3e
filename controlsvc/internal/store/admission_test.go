package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// admSQL runs a seeding statement returning an id.
func admSQL(t testing.TB, st *Store, sql string, args ...any) int64 {
	t.Helper()
	var id int64
	if err := st.Pool.QueryRow(context.Background(), sql, args...).Scan(&id); err != nil {
		t.Fatalf("seeding %q: %v", sql, err)
	}
	return id
}

func admExec(t *testing.T, st *Store, sql string, args ...any) {
	t.Helper()
	if _, err := st.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func TestAuthenticateKey(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		breakIt string // SQL run with $1 = key id, $2 = user id, $3 = group id; "" = leave servable
		wantErr error
	}{
		{name: "servable"},
		{name: "disabled key", breakIt: `UPDATE api_keys SET status = 'disabled' WHERE id = $1 AND $2::bigint > 0 AND $3::bigint > 0`, wantErr: ErrKeyNotFound},
		{name: "deleted key", breakIt: `UPDATE api_keys SET deleted_at = now() WHERE id = $1 AND $2::bigint > 0 AND $3::bigint > 0`, wantErr: ErrKeyNotFound},
		{name: "disabled user", breakIt: `UPDATE users SET status = 'disabled' WHERE id = $2 AND $1::bigint > 0 AND $3::bigint > 0`, wantErr: ErrKeyNotFound},
		{name: "disabled group", breakIt: `UPDATE groups SET status = 'disabled' WHERE id = $3 AND $1::bigint > 0 AND $2::bigint > 0`, wantErr: ErrKeyNotFound},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := admSQL(t, st, `INSERT INTO users (name, concurrency, balance_micros) VALUES ('u', 7, 1234) RETURNING id`)
			group := admSQL(t, st, `INSERT INTO groups (name, platform, rate_multiplier) VALUES ($1, 'anthropic', 1.5) RETURNING id`,
				"auth-"+tt.name)
			hash := "hash-" + tt.name
			key := admSQL(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix) VALUES ($1, $2, $3, 'sk-pg') RETURNING id`,
				user, group, hash)
			if tt.breakIt != "" {
				admExec(t, st, tt.breakIt, key, user, group)
			}
			got, err := st.AuthenticateKey(ctx, hash)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("case %d: AuthenticateKey error = %v, want %v", i, err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			want := KeyAuth{KeyID: key, UserID: user, GroupID: group, UserConcurrency: 7, BalanceMicros: 1234,
				Platform: "anthropic", RateMicros: 1_500_000,
				BillingMode: BillingBalance, DefaultMaxOutputTokens: 4096, MaxReserveMicros: 5_000_000}
			if got != want {
				t.Fatalf("AuthenticateKey = %+v, want %+v", got, want)
			}
		})
	}
	if _, err := st.AuthenticateKey(ctx, "no-such-hash"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("unknown hash: %v, want ErrKeyNotFound", err)
	}
}

// The key's billing settings come with it: the group's, the user's own rate in the group
// and the key's expiry.
func TestAuthenticateKeyBilling(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	user := admSQL(t, st, `INSERT INTO users (name, concurrency, balance_micros) VALUES ('u', 7, 0) RETURNING id`)
	group := admSQL(t, st, `INSERT INTO groups (name, platform, rate_multiplier, billing_mode, allow_unpriced,
		default_max_output_tokens, max_reserve_micros) VALUES ('auth-billing', 'openai', 2, 'subscription', true, 10, 777) RETURNING id`)
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	admSQL(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix, expires_at) VALUES ($1, $2, 'hash-billing', 'sk-pg', $3) RETURNING id`,
		user, group, expires)
	got, err := st.AuthenticateKey(ctx, "hash-billing")
	if err != nil {
		t.Fatal(err)
	}
	if got.RateMicros != 2_000_000 || got.BillingMode != BillingSubscription || !got.AllowUnpriced ||
		got.DefaultMaxOutputTokens != 10 || got.MaxReserveMicros != 777 || got.KeyExpiresAt == nil || !got.KeyExpiresAt.Equal(expires) {
		t.Fatalf("AuthenticateKey = %+v", got)
	}
	admExec(t, st, `INSERT INTO user_group_rates (user_id, group_id, rate_multiplier) VALUES ($1, $2, 0.25)`, user, group)
	if got, err = st.AuthenticateKey(ctx, "hash-billing"); err != nil || got.RateMicros != 250_000 {
		t.Fatalf("with the user's own rate: %+v, %v; want rate 250000", got, err)
	}
}

// The group's failover settings come with the key: NULL as nil (the gateway's default), and
// the fallbacks as their JSON, "" when there are none.
func TestAuthenticateKeyFailover(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	user := admSQL(t, st, `INSERT INTO users (name, concurrency, balance_micros) VALUES ('u', 1, 0) RETURNING id`)
	group := admSQL(t, st, `INSERT INTO groups (name, platform, response_header_timeout_ms, hedge_after_ms,
		breaker_threshold, breaker_window_ms, breaker_cooldown_ms, model_fallbacks)
		VALUES ('auth-failover', 'openai', 0, 1500, 4, 20000, 700, '{"a": {"exhausted": ["b"]}}') RETURNING id`)
	plain := admSQL(t, st, `INSERT INTO groups (name, platform) VALUES ('auth-failover-plain', 'openai') RETURNING id`)
	admSQL(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix) VALUES ($1, $2, 'hash-fo', 'sk-pg') RETURNING id`, user, group)
	admSQL(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix) VALUES ($1, $2, 'hash-fo-plain', 'sk-pg') RETURNING id`, user, plain)
	got, err := st.AuthenticateKey(ctx, "hash-fo")
	if err != nil {
		t.Fatal(err)
	}
	v := func(p *int64) int64 {
		if p == nil {
			return -1
		}
		return *p
	}
	if v(got.ResponseHeaderTimeoutMs) != 0 || v(got.HedgeAfterMs) != 1500 || v(got.BreakerThreshold) != 4 ||
		v(got.BreakerWindowMs) != 20000 || v(got.BreakerCooldownMs) != 700 || got.ModelFallbacks != `{"a": {"exhausted": ["b"]}}` {
		t.Fatalf("AuthenticateKey = %+v", got)
	}
	got, err = st.AuthenticateKey(ctx, "hash-fo-plain")
	if err != nil {
		t.Fatal(err)
	}
	if got.ResponseHeaderTimeoutMs != nil || got.HedgeAfterMs != nil || got.BreakerThreshold != nil ||
		got.BreakerWindowMs != nil || got.BreakerCooldownMs != nil || got.ModelFallbacks != "" {
		t.Fatalf("AuthenticateKey of a group with the defaults = %+v", got)
	}
}

func TestGroupAccounts(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	group := admSQL(t, st, `INSERT INTO groups (name, platform) VALUES ('ga', 'openai') RETURNING id`)
	otherGroup := admSQL(t, st, `INSERT INTO groups (name, platform) VALUES ('gb', 'openai') RETURNING id`)
	add := func(platform, status string, deleted bool, groups ...int64) int64 {
		id := admSQL(t, st, `INSERT INTO accounts (name, platform, base_url, credential, concurrency, priority, status, model_mapping)
			VALUES ('a', $1, 'https://api.example', '{"api_key":"sk-up"}', 3, 20, $2, '{"gpt-4o":"gpt-4o-x"}') RETURNING id`,
			platform, status)
		if deleted {
			admExec(t, st, `UPDATE accounts SET deleted_at = now() WHERE id = $1`, id)
		}
		for _, g := range groups {
			admExec(t, st, `INSERT INTO account_groups (account_id, group_id) VALUES ($1, $2)`, id, g)
		}
		return id
	}
	healthy := add("openai", "active", false, group, otherGroup)
	marked := add("openai", "active", false, group)
	add("anthropic", "active", false, group)   // other platform
	add("openai", "disabled", false, group)    // disabled
	add("openai", "active", true, group)       // deleted
	add("openai", "active", false, otherGroup) // other group
	until := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	admExec(t, st, `UPDATE accounts SET rate_limited_until = $2, overloaded_until = $2, paused_until = $2,
		last_used_at = $2, credential = '{}' WHERE id = $1`, marked, until)

	got, err := st.GroupAccounts(ctx, group, "openai")
	if err != nil {
		t.Fatalf("GroupAccounts: %v", err)
	}
	if len(got) != 2 || got[0].ID != healthy || got[1].ID != marked {
		t.Fatalf("GroupAccounts returned %+v, want accounts %d and %d", got, healthy, marked)
	}
	h := got[0]
	if h.BaseURL != "https://api.example" || h.APIKey != "sk-up" || h.Concurrency != 3 || h.Priority != 20 ||
		string(h.ModelMapping) != `{"gpt-4o": "gpt-4o-x"}` || !h.RateLimitedUntil.IsZero() || !h.LastUsedAt.IsZero() {
		t.Fatalf("healthy account = %+v (mapping %s)", h, h.ModelMapping)
	}
	m := got[1]
	if m.APIKey != "" || !m.RateLimitedUntil.Equal(until) || !m.OverloadedUntil.Equal(until) ||
		!m.PausedUntil.Equal(until) || !m.LastUsedAt.Equal(until) {
		t.Fatalf("marked account = %+v, want every deadline %v", m, until)
	}
	none, err := st.GroupAccounts(ctx, group, "anthropic")
	if err != nil || len(none) != 1 {
		t.Fatalf("anthropic accounts of the group = %v, %v; want 1", none, err)
	}
}

func TestTouchLastUsed(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	user := admSQL(t, st, `INSERT INTO users (name) VALUES ('u') RETURNING id`)
	group := admSQL(t, st, `INSERT INTO groups (name, platform) VALUES ('g', 'openai') RETURNING id`)
	key := admSQL(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix) VALUES ($1, $2, 'h', 'p') RETURNING id`, user, group)
	acc := admSQL(t, st, `INSERT INTO accounts (name, platform, base_url) VALUES ('a', 'openai', 'http://x') RETURNING id`)
	later := time.Now().Truncate(time.Microsecond)
	earlier := later.Add(-time.Hour)

	if err := st.TouchLastUsed(ctx, []int64{acc}, []int64{key}, later); err != nil {
		t.Fatalf("TouchLastUsed: %v", err)
	}
	if err := st.TouchLastUsed(ctx, []int64{acc}, []int64{key}, earlier); err != nil {
		t.Fatalf("TouchLastUsed: %v", err)
	}
	if err := st.TouchLastUsed(ctx, nil, nil, earlier); err != nil {
		t.Fatalf("TouchLastUsed with nothing: %v", err)
	}
	var a, k time.Time
	if err := st.Pool.QueryRow(ctx, `SELECT (SELECT last_used_at FROM accounts WHERE id = $1),
		(SELECT last_used_at FROM api_keys WHERE id = $2)`, acc, key).Scan(&a, &k); err != nil {
		t.Fatal(err)
	}
	if !a.Equal(later) || !k.Equal(later) {
		t.Fatalf("last_used_at account %v key %v, want %v (never backwards)", a, k, later)
	}
}
