package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

const testPluginSecret = "plugin-secret-xyz-123-0123456789abcdef"

// fixture is a user with a key in an openai group of one account.
type fixture struct {
	user, group, account int64
	key                  string
}

// seed inserts a fixture of a user of concurrency 1 and an account of concurrency 10.
func seed(t *testing.T, dbURL string) fixture { return seedWith(t, dbURL, 1, 10) }

// seedWith inserts a fixture into a migrated database.
func seedWith(t *testing.T, dbURL string, userConcurrency, accountConcurrency int) fixture {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var f fixture
	row := func(dst *int64, sql string, args ...any) {
		if err := conn.QueryRow(ctx, sql, args...).Scan(dst); err != nil {
			t.Fatalf("seeding %q: %v", sql, err)
		}
	}
	row(&f.user, `INSERT INTO users (name, concurrency, balance_micros) VALUES ('u', $1, 10000000) RETURNING id`,
		userConcurrency)
	row(&f.group, `INSERT INTO groups (name, platform, rate_multiplier) VALUES ($1, 'openai', 1) RETURNING id`,
		fmt.Sprintf("g-%d", time.Now().UnixNano()))
	row(&f.account, `INSERT INTO accounts (name, platform, base_url, credential, concurrency, priority, model_mapping)
		VALUES ('a', 'openai', 'http://upstream.test', '{"api_key":"sk-up"}', $1, 50, '{}') RETURNING id`, accountConcurrency)
	if _, err := conn.Exec(ctx, `INSERT INTO account_groups (account_id, group_id) VALUES ($1, $2)`, f.account, f.group); err != nil {
		t.Fatal(err)
	}
	f.key = fmt.Sprintf("sk-pg-test-%d", time.Now().UnixNano())
	sum := sha256.Sum256([]byte(f.key))
	if _, err := conn.Exec(ctx, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix) VALUES ($1, $2, $3, $4)`,
		f.user, f.group, hex.EncodeToString(sum[:]), f.key[:10]); err != nil {
		t.Fatal(err)
	}
	return f
}

// queryInt runs a one-number query.
func queryInt(t *testing.T, dbURL, sql string, args ...any) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return n
}

// wantNothingHeld checks the fixture's slots and its holds in Redis.
func wantNothingHeld(t *testing.T, rdb *redis.Client, f fixture) {
	t.Helper()
	ctx := context.Background()
	for _, key := range []string{fmt.Sprintf("pg:{u:%d}:slots", f.user), fmt.Sprintf("pg:{a:%d}:slots", f.account),
		fmt.Sprintf("pg:{u:%d}:wait", f.user), fmt.Sprintf("pg:{a:%d}:wait", f.account)} {
		if n, err := rdb.ZCard(ctx, key).Result(); err != nil || n != 0 {
			t.Errorf("%s holds %d (%v), want 0", key, n, err)
		}
	}
	if holds, err := rdb.Keys(ctx, fmt.Sprintf("pg:{u:%d}:h:*", f.user)).Result(); err != nil || len(holds) != 0 {
		t.Errorf("holds left: %v (%v)", holds, err)
	}
}

// waitQueued waits until n admissions wait in the fixture user's queue.
func waitQueued(t *testing.T, rdb *redis.Client, f fixture, n int64) {
	t.Helper()
	waitQueuedOn(t, rdb, fmt.Sprintf("pg:{u:%d}:wait", f.user), n)
}

// waitQueuedOn waits until the wait queue key holds n admissions.
func waitQueuedOn(t *testing.T, rdb *redis.Client, key string, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := rdb.ZCard(context.Background(), key).Result()
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d (%v), want %d", key, got, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type grant struct {
	GrantID   string `json:"grant_id"`
	RequestID string `json:"request_id"`
	UserID    int64  `json:"user_id"`
	APIKeyID  int64  `json:"api_key_id"`
	GroupID   int64  `json:"group_id"`
	AccountID int64  `json:"account_id"`
}

type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func post(ctx context.Context, url string, body any) answer {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("X-Poolgate-Secret", testPluginSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: data, err: err}
}

// admitBody is an admission of the fixture's key, waiting up to 20 s.
func admitBody(f fixture, requestID string) map[string]any {
	return map[string]any{"request_id": requestID, "api_key": f.key, "path": "/v1/responses", "model": "gpt-4o",
		"max_wait_ms": 20000, "deadline_ms": time.Now().Add(25 * time.Second).UnixMilli(), "input_bytes": 100}
}

func mustGrant(t *testing.T, a answer) grant {
	t.Helper()
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("admit = %d %s (%v), want a grant", a.status, a.body, a.err)
	}
	var g grant
	if err := json.Unmarshal(a.body, &g); err != nil || g.GrantID == "" {
		t.Fatalf("grant %s: %v", a.body, err)
	}
	return g
}

// reportBody is the final report of g: a 200 with a small usage.
func reportBody(g grant) map[string]any {
	return map[string]any{"reports": []map[string]any{{
		"grant_id": g.GrantID, "request_id": g.RequestID, "user_id": g.UserID, "api_key_id": g.APIKeyID,
		"group_id": g.GroupID, "account_id": g.AccountID, "path": "/v1/responses", "model": "gpt-4o", "status": 200,
		"usage_format": "responses", "usage": map[string]any{"input_tokens": 10, "output_tokens": 5},
		"attempts": []map[string]any{{"account_id": g.AccountID, "status": 200}},
	}}}
}

func wantAccepted(t *testing.T, a answer) {
	t.Helper()
	if a.err != nil || a.status != http.StatusOK || !bytes.Contains(a.body, []byte(`"accepted":1`)) {
		t.Fatalf("report = %d %s (%v), want accepted 1", a.status, a.body, a.err)
	}
}
