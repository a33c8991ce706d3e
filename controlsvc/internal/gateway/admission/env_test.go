package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/internal/seedtest"
	"github.com/poolgate/poolgate/controlsvc/internal/holds"
	"github.com/poolgate/poolgate/controlsvc/internal/prices"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"
	"github.com/poolgate/poolgate/internal/testenv"

	"github.com/poolgate/poolgate/plugin/wire"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testWait keeps waits short so that tests of full sets see the timeout refusal quickly.
var testWait = WaitConfig{UserTimeout: 300 * time.Millisecond, StickyTimeout: 300 * time.Millisecond,
	FallbackTimeout: 300 * time.Millisecond}

// env is an Admitter on a fresh PostgreSQL database and Redis, called directly: the
// gateway package's tests drive admission through POST /internal/v1/admit.
type env struct {
	st    *store.Store
	rdb   *redis.Client
	svc   *Admitter
	slots *slots.Slots
}

// shippedPrices serves the shipped price table, as the gateway does without a price cache.
type shippedPrices struct{ t *usage.PriceTable }

func (p shippedPrices) Table() *usage.PriceTable { return p.t }

func newEnv(t testing.TB) *env { return newEnvConfig(t, Config{Wait: testWait}) }

// newEnvConfig is an env whose Admitter has cfg.
func newEnvConfig(t testing.TB, cfg Config) *env {
	t.Helper()
	st := storetest.Open(t)
	rdb := testenv.RedisClient(t, testenv.RedisURL(t))
	// Wallet copies refresh like the key cache: a test that changes money in SQL waits for both.
	return &env{st: st, rdb: rdb, svc: newAdmitter(t, st, rdb, cfg, CacheTTL), slots: slots.New(rdb, time.Minute)}
}

// newAdmitter is an Admitter with cfg on st and rdb, its other required fields built as
// the gateway builds them, its wallet copies refreshed after walletRefresh (0: the holds
// default); the test closes it.
func newAdmitter(t testing.TB, st *store.Store, rdb redis.UniversalClient, cfg Config, walletRefresh time.Duration) *Admitter {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	table, err := prices.Table(prices.Effective(nil))
	if err != nil {
		t.Fatalf("shipped price table: %v", err)
	}
	var s *Admitter
	cfg.Store, cfg.Redis, cfg.Log = st, rdb, log
	cfg.Slots = slots.New(rdb, time.Minute)
	cfg.Holds = holds.New(rdb, st, store.DefaultReservationTTL, walletRefresh)
	cfg.Breakers = breaker.New(rdb)
	cfg.Health = health.New(health.Config{Store: st, Breakers: cfg.Breakers, Log: log,
		AccountChanged: func(ctx context.Context, id int64) { s.AccountChanged(ctx, id) }})
	cfg.Prices = shippedPrices{table}
	s = New(cfg)
	t.Cleanup(s.Close)
	return s
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

// seedKey inserts an active API key and returns the key in clear.
func (e *env) seedKey(t testing.TB, user, group int64) string {
	t.Helper()
	return seedtest.SeedKey(t, e.st, user, group)
}

// fixture is a user with a key in a group.
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

// result is an admission's answer as the gateway writes it: the status, the reject reason
// (X-Poolgate-Reject) and Retry-After of a refusal, and the body.
type result struct {
	status     int
	reject     string
	retryAfter string
	body       []byte
}

// admit runs one admission, its path /v1/responses and its request id fresh unless set.
func (e *env) admit(t *testing.T, req Request) result {
	t.Helper()
	if req.Path == "" {
		req.Path = "/v1/responses"
	}
	if req.RequestID == "" {
		req.RequestID = fmt.Sprintf("req_%d", time.Now().UnixNano())
	}
	g, rej, err := e.svc.Admit(context.Background(), &req)
	if err != nil {
		t.Fatalf("admit: %v", err)
	}
	if rej != nil {
		b, err := json.Marshal(rej.Body(req.Path, req.Platform()))
		if err != nil {
			t.Fatal(err)
		}
		return result{status: rej.StatusFor(req.Path), reject: rej.reason, retryAfter: rej.retryAfter, body: b}
	}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return result{status: 200, body: b}
}

// mustGrant admits and fails the test unless it was granted.
func (e *env) mustGrant(t *testing.T, req Request) wire.Grant {
	t.Helper()
	res := e.admit(t, req)
	if res.status != 200 {
		t.Fatalf("admit = %d %s (reject %q), want 200", res.status, res.body, res.reject)
	}
	return e.grantOf(t, res)
}

// grantOf decodes a granted answer.
func (e *env) grantOf(t *testing.T, res result) wire.Grant {
	t.Helper()
	var g wire.Grant
	if err := json.Unmarshal(res.body, &g); err != nil {
		t.Fatalf("decoding grant %s: %v", res.body, err)
	}
	return g
}

// release gives back the slots of a grant, as the plugin's report would.
func (e *env) release(t *testing.T, g wire.Grant) {
	t.Helper()
	if err := e.slots.ReleaseMany(context.Background(), []slots.Lease{
		{Kind: slots.KindUser, ID: g.UserID, GrantID: g.GrantID},
		{Kind: slots.KindAccount, ID: g.AccountID, GrantID: g.GrantID}}); err != nil {
		t.Fatal(err)
	}
}

// failOver re-admits grant g after its attempt failed with f, and returns the new grant.
func (e *env) failOver(t *testing.T, key, model string, g wire.Grant, f failure) wire.Grant {
	t.Helper()
	f.AccountID = g.AccountID
	return e.mustGrant(t, Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: key, Model: model,
		Exclude: []int64{g.AccountID}, Failed: &f})
}

// blockedUntil is how long the account stays blocked for model.
func (e *env) blockedUntil(t *testing.T, account int64, model string) time.Duration {
	t.Helper()
	return seedtest.BlockedUntil(t, e.st, account, model)
}

// setFallbacks configures the group's model_fallbacks (before its key is first used: the key
// cache holds the rules for 2 s).
func (e *env) setFallbacks(t *testing.T, group int64, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	e.exec(t, `UPDATE groups SET model_fallbacks = $2::jsonb WHERE id = $1`, group, string(b))
}

// count is the number of leases held on a slot set (kind user or account).
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

// binding reads a session's binding from Redis; zero when there is none.
func (e *env) binding(t *testing.T, group int64, hash string) binding {
	t.Helper()
	v, err := e.rdb.Get(context.Background(), stickyKey(group, hash)).Result()
	if errors.Is(err, redis.Nil) {
		return binding{}
	}
	if err != nil {
		t.Fatalf("reading binding: %v", err)
	}
	return parseBinding(v)
}

// wantError checks a client-facing error body.
func wantError(t *testing.T, res result, status int, reason, anthropicOrOpenAI, errType, message string) {
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
