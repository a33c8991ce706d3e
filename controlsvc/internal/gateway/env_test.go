package gateway

import (
	"bytes"
	"context"
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

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/internal/seedtest"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/internal/testenv"

	"github.com/poolgate/poolgate/plugin/wire"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const testSecret = "plugin-secret-for-tests"

// cacheTTL is admission's cache TTL, within which the tests' SQL changes reach it.
const cacheTTL = admission.CacheTTL

// testWait keeps waits short so that tests of full sets see the timeout refusal quickly.
var testWait = admission.WaitConfig{UserTimeout: 300 * time.Millisecond, StickyTimeout: 300 * time.Millisecond,
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

func newEnvWith(t testing.TB, leaseTTL time.Duration, wait admission.WaitConfig) *env {
	t.Helper()
	return newEnvConfig(t, Config{LeaseTTL: leaseTTL, Wait: wait})
}

// newEnvConfig is an env whose service has cfg (the plugin secret is always testSecret).
func newEnvConfig(t testing.TB, cfg Config) *env {
	t.Helper()
	st := storetest.Open(t)
	return newEnvOn(t, st, st, cfg)
}

// newCountedEnv is newEnv whose Service reaches PostgreSQL through a pool that counts its
// statements; the env's own store (seeding, checks) is not counted.
func newCountedEnv(t *testing.T) (*env, *seedtest.QueryCounter) {
	t.Helper()
	st := storetest.Open(t)
	counted, counter := seedtest.Counted(t, st)
	return newEnvOn(t, st, counted, Config{Wait: testWait}), counter
}

// newEnvOn is an env seeding and checking through st whose service reaches PostgreSQL
// through svcStore.
func newEnvOn(t testing.TB, st, svcStore *store.Store, cfg Config) *env {
	t.Helper()
	cfg.PluginSecret = testSecret
	rdb := testenv.RedisClient(t, testenv.RedisURL(t))

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.WalletRefresh == 0 {
		cfg.WalletRefresh = cacheTTL // like the key cache: a test that changes money in SQL waits for both
	}
	svc := New(svcStore, rdb, cfg, log)
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
	seedtest.Exec(t, e.st, sql, args...)
}

func (e *env) queryInt(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	return seedtest.QueryInt(t, e.st, sql, args...)
}

func (e *env) insertID(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	return e.queryInt(t, sql, args...)
}

// seedUser inserts an active user.
func (e *env) seedUser(t testing.TB, concurrency int, balanceMicros int64) int64 {
	t.Helper()
	return seedtest.SeedUser(t, e.st, concurrency, balanceMicros)
}

// seedGroup inserts an active group.
func (e *env) seedGroup(t testing.TB, platform, rate string) int64 {
	t.Helper()
	return seedtest.SeedGroup(t, e.st, platform, rate)
}

type accountSeed struct {
	platform    string // default openai
	apiKey      string // default none
	concurrency int    // default 10
	priority    int    // default 50
	mapping     string // JSON, default {}
	lastUsed    *time.Time
}

// seedAccount inserts an active account into group.
func (e *env) seedAccount(t testing.TB, group int64, a accountSeed) int64 {
	t.Helper()
	return seedtest.SeedAccount(t, e.st, group, seedtest.Account{Platform: a.platform, APIKey: a.apiKey,
		Concurrency: a.concurrency, Priority: a.priority, Mapping: a.mapping, LastUsed: a.lastUsed})
}

// seedKey inserts an active API key and returns the key in clear.
func (e *env) seedKey(t testing.TB, user, group int64) string {
	t.Helper()
	return seedtest.SeedKey(t, e.st, user, group)
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

func (e *env) admit(t *testing.T, req admission.Request) httpResult {
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
func (e *env) mustGrant(t *testing.T, req admission.Request) wire.Grant {
	t.Helper()
	res := e.admit(t, req)
	if res.status != http.StatusOK {
		t.Fatalf("admit = %d %s (reject %q), want 200", res.status, res.body, res.reject)
	}
	var rep wire.Grant
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
