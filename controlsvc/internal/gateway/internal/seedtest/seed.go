// Package seedtest holds what the gateway's and admission's tests share: the rows they
// admit against (users, groups, accounts and keys in a store/storetest database) and a
// store whose statements are counted. Tests only.
package seedtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Exec runs sql and fails the test on an error.
func Exec(t testing.TB, st *store.Store, sql string, args ...any) {
	t.Helper()
	if _, err := st.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// QueryInt is the one integer sql selects.
func QueryInt(t testing.TB, st *store.Store, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := st.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return n
}

// SeedUser inserts an active user.
func SeedUser(t testing.TB, st *store.Store, concurrency int, balanceMicros int64) int64 {
	t.Helper()
	return QueryInt(t, st, `INSERT INTO users (name, concurrency, balance_micros) VALUES ('u', $1, $2) RETURNING id`,
		concurrency, balanceMicros)
}

// SeedGroup inserts an active group.
func SeedGroup(t testing.TB, st *store.Store, platform, rate string) int64 {
	t.Helper()
	return QueryInt(t, st, `INSERT INTO groups (name, platform, rate_multiplier) VALUES ($1, $2, $3::numeric) RETURNING id`,
		fmt.Sprintf("g-%s-%d", platform, time.Now().UnixNano()), platform, rate)
}

// Account is an account to seed; zero fields take the defaults named.
type Account struct {
	Platform    string // default openai
	APIKey      string // default ""
	Concurrency int    // default 10
	Priority    int    // default 50
	Mapping     string // JSON, default {}
	LastUsed    *time.Time
}

// SeedAccount inserts an active account into group.
func SeedAccount(t testing.TB, st *store.Store, group int64, a Account) int64 {
	t.Helper()
	if a.Platform == "" {
		a.Platform = "openai"
	}
	if a.Concurrency == 0 {
		a.Concurrency = 10
	}
	if a.Priority == 0 {
		a.Priority = 50
	}
	if a.Mapping == "" {
		a.Mapping = "{}"
	}
	cred, _ := json.Marshal(map[string]string{"api_key": a.APIKey})
	id := QueryInt(t, st, `INSERT INTO accounts (name, platform, base_url, credential, concurrency, priority, model_mapping, last_used_at)
		VALUES ('a', $1, 'http://upstream.test', $2::jsonb, $3, $4, $5::jsonb, $6) RETURNING id`,
		a.Platform, string(cred), a.Concurrency, a.Priority, a.Mapping, a.LastUsed)
	Exec(t, st, `INSERT INTO account_groups (account_id, group_id) VALUES ($1, $2)`, id, group)
	return id
}

// SeedKey inserts an active API key and returns the key in clear.
func SeedKey(t testing.TB, st *store.Store, user, group int64) string {
	t.Helper()
	key := fmt.Sprintf("sk-pg-test-%d-%d", user, time.Now().UnixNano())
	sum := sha256.Sum256([]byte(key))
	Exec(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix) VALUES ($1, $2, $3, $4)`,
		user, group, hex.EncodeToString(sum[:]), key[:10])
	return key
}

// BlockedUntil is how long the account stays blocked for model (account_model_blocks).
func BlockedUntil(t testing.TB, st *store.Store, account int64, model string) time.Duration {
	t.Helper()
	var until time.Time
	err := st.Pool.QueryRow(context.Background(),
		`SELECT blocked_until FROM account_model_blocks WHERE account_id = $1 AND model = $2`, account, model).Scan(&until)
	if err != nil {
		t.Fatalf("model block of account %d for %s: %v", account, model, err)
	}
	return time.Until(until)
}
