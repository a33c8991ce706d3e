package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const testSecret = "plugin-secret-for-tests"

// testWait keeps waits short so that tests of full sets see the timeout refusal quickly.
var testWait = WaitConfig{UserTimeout: 300 * time.Millisecond, StickyTimeout: 300 * time.Millisecond,
	FallbackTimeout: 300 * time.Millisecond}

// env is a Service on a fresh PostgreSQL database and Redis, served over real HTTP.
type env struct {
	st    *store.Store
	rdb   *redis.Client
	svc   *Service
	url   string
	slots *slots.Slots
}

func newEnv(t testing.TB) *env { return newEnvTTL(t, DefaultLeaseTTL) }

func newEnvTTL(t testing.TB, leaseTTL time.Duration) *env {
	t.Helper()
	return newEnvWith(t, leaseTTL, testWait)
}

func newEnvWith(t testing.TB, leaseTTL time.Duration, wait WaitConfig) *env {
	t.Helper()
	return newEnvConfig(t, Config{LeaseTTL: leaseTTL, Wait: wait})
}

// newEnvConfig is an env whose service has cfg (the plugin secret is always testSecret).
func newEnvConfig(t testing.TB, cfg Config) *env {
	t.Helper()
	cfg.PluginSecret = testSecret
	st := storetest.Open(t)
	rdb := testenv.RedisClient(t, testenv.RedisURL(t))

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.WalletRefresh == 0 {
		cfg.WalletRefresh = cacheTTL // like the key cache: a test that changes money in SQL waits for both
	}
	svc := New(st, rdb, cfg, log)
	t.Cleanup(svc.Close)
	r := mux.NewRouter()
	svc.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{st: st, rdb: rdb, svc: svc, url: srv.URL, slots: slots.New(rdb, time.Minute)}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func (e *env) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := e.st.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func (e *env) queryInt(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.st.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return n
}

func (e *env) insertID(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	return e.queryInt(t, sql, args...)
}

// seedUser inserts an active user.
func (e *env) seedUser(t testing.TB, concurrency int, balanceMicros int64) int64 {
	t.Helper()
	return e.insertID(t, `INSERT INTO users (name, concurrency, balance_micros) VALUES ('u', $1, $2) RETURNING id`,
		concurrency, balanceMicros)
}

// seedGroup inserts an active group.
func (e *env) seedGroup(t testing.TB, platform, rate string) int64 {
	t.Helper()
	return e.insertID(t, `INSERT INTO groups (name, platform, rate_multiplier) VALUES ($1, $2, $3::numeric) RETURNING id`,
		fmt.Sprintf("g-%s-%d", platform, time.Now().UnixNano()), platform, rate)
}

type accountSeed struct {
	platform    string // default openai
	apiKey      string // default sk-up-<n>
	concurrency int    // default 10
	priority    int    // default 50
	mapping     string // JSON, default {}
	lastUsed    *time.Time
}

// seedAccount inserts an active account into group.
func (e *env) seedAccount(t testing.TB, group int64, a accountSeed) int64 {
	t.Helper()
	if a.platform == "" {
		a.platform = "openai"
	}
	if a.concurrency == 0 {
		a.concurrency = 10
	}
	if a.priority == 0 {
		a.priority = 50
	}
	if a.mapping == "" {
		a.mapping = "{}"
	}
	cred, _ := json.Marshal(map[string]string{"api_key": a.apiKey})
	id := e.insertID(t, `INSERT INTO accounts (name, platform, base_url, credential, concurrency, priority, model_mapping, last_used_at)
		VALUES ('a', $1, 'http://upstream.test', $2::jsonb, $3, $4, $5::jsonb, $6) RETURNING id`,
		a.platform, string(cred), a.concurrency, a.priority, a.mapping, a.lastUsed)
	e.exec(t, `INSERT INTO account_groups (account_id, group_id) VALUES ($1, $2)`, id, group)
	return id
}

// seedKey inserts an active API key and returns the key in clear.
func (e *env) seedKey(t testing.TB, user, group int64) string {
	t.Helper()
	key := fmt.Sprintf("sk-pg-test-%d-%d", user, time.Now().UnixNano())
	sum := sha256.Sum256([]byte(key))
	e.exec(t, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix) VALUES ($1, $2, $3, $4)`,
		user, group, hex.EncodeToString(sum[:]), key[:10])
	return key
}

// fixture is a user with a key in an openai group.
type fixture struct {
	user, group int64
	key         string
}

func (e *env) seedFixture(t testing.TB, concurrency int, platform string) fixture {
	t.Helper()
	u := e.seedUser(t, concurrency, 10_000_000)
	g := e.seedGroup(t, platform, "1")
	return fixture{user: u, group: g, key: e.seedKey(t, u, g)}
}

type httpResult struct {
	status     int
	reject     string
	retryAfter string
	body       []byte
}

func (e *env) post(t *testing.T, path, secret string, body any) httpResult {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = bytes.NewBufferString(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(http.MethodPost, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set(SecretHeader, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	return httpResult{status: resp.StatusCode, reject: resp.Header.Get(RejectHeader),
		retryAfter: resp.Header.Get("Retry-After"), body: b}
}

func (e *env) admit(t *testing.T, req admitRequest) httpResult {
	t.Helper()
	if req.Path == "" {
		req.Path = "/v1/responses"
	}
	if req.RequestID == "" {
		req.RequestID = fmt.Sprintf("req_%d", time.Now().UnixNano())
	}
	return e.post(t, "/internal/v1/admit", testSecret, req)
}

// mustGrant admits and fails the test unless it was granted.
func (e *env) mustGrant(t *testing.T, req admitRequest) admitReply {
	t.Helper()
	res := e.admit(t, req)
	if res.status != http.StatusOK {
		t.Fatalf("admit = %d %s (reject %q), want 200", res.status, res.body, res.reject)
	}
	var rep admitReply
	if err := json.Unmarshal(res.body, &rep); err != nil {
		t.Fatalf("decoding grant: %v", err)
	}
	return rep
}

func (e *env) count(t *testing.T, kind string, id int64) int64 {
	t.Helper()
	l, err := e.slots.Loads(context.Background(), kind, []int64{id})
	if err != nil {
		t.Fatalf("Loads: %v", err)
	}
	return l[id].Active
}

// holdLease gives grant a lease on an account without queueing, under limit.
func (e *env) holdLease(t *testing.T, account int64, grant string, limit int) {
	t.Helper()
	res, err := e.slots.Enter(context.Background(), slots.Entry{Kind: slots.KindAccount, ID: account, GrantID: grant, Limit: limit})
	if err != nil || res != slots.Held {
		t.Fatalf("holding a lease of %s on account %d: %v %v", grant, account, res, err)
	}
}

// fillAccount holds n leases of fake grants on an account.
func (e *env) fillAccount(t *testing.T, account int64, n int) {
	t.Helper()
	for i := range n {
		e.holdLease(t, account, fmt.Sprintf("g_fill_%d", i), 1000)
	}
}

// wantError checks a client-facing error body.
func wantError(t *testing.T, res httpResult, status int, reason, anthropicOrOpenAI, errType, message string) {
	t.Helper()
	if res.status != status || res.reject != reason {
		t.Fatalf("got %d reject %q (%s), want %d reject %q", res.status, res.reject, res.body, status, reason)
	}
	var want any
	if anthropicOrOpenAI == "anthropic" {
		want = map[string]any{"type": "error", "error": map[string]any{"type": errType, "message": message}}
	} else {
		want = map[string]any{"error": map[string]any{"type": errType, "message": message}}
	}
	wantJSON, _ := json.Marshal(want)
	var got any
	if err := json.Unmarshal(res.body, &got); err != nil {
		t.Fatalf("error body %s is not JSON: %v", res.body, err)
	}
	gotJSON, _ := json.Marshal(got)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("body = %s, want %s", gotJSON, wantJSON)
	}
}
