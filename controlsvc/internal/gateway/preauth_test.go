package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/internal/testenv"
)

// queryCounter counts the statements a pool sends to PostgreSQL, all of them and those that
// read api_keys (the key lookups).
type queryCounter struct {
	all, keys, authenticate atomic.Int64
	// hot: the statements other than the background ones off admission's path: the
	// last-used batcher's (touch.go) and the ledger partition keeper's
	// (ledger.PartitionKeeper, at start and daily).
	hot atomic.Int64
}

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.all.Add(1)
	if !strings.Contains(d.SQL, "last_used_at") && !strings.Contains(d.SQL, "poolgate_ensure_usage_month") {
		c.hot.Add(1)
	}
	if strings.Contains(d.SQL, "api_keys") {
		c.keys.Add(1)
	}
	if strings.Contains(d.SQL, "k.key_hash = $1") { // store.AuthenticateKey
		c.authenticate.Add(1)
	}
	return ctx
}

func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// newCountedEnv is newEnv whose Service reaches PostgreSQL through a pool that counts its
// statements; the env's own store (seeding, checks) is not counted.
func newCountedEnv(t *testing.T) (*env, *queryCounter) {
	t.Helper()
	st := storetest.Open(t)
	cfg := st.Pool.Config().Copy()
	counter := &queryCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	rdb := testenv.RedisClient(t, testenv.RedisURL(t))
	svc := New(&store.Store{Pool: pool}, rdb, Config{PluginSecret: testSecret, Wait: testWait}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(svc.Close)
	r := mux.NewRouter()
	svc.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{st: st, rdb: rdb, svc: svc, url: srv.URL, slots: slots.New(rdb, time.Minute)}, counter
}

func randomKey(t *testing.T) string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "sk-pg-" + hex.EncodeToString(b[:])
}

// TestRandomKeysCostFewQueries: 10 000 admissions with random well-formed keys cost at most
// a few hundred PostgreSQL statements (the key probe batches them), are all refused 401,
// and do not evict a good key: it stays in the key cache and is served throughout.
func TestRandomKeysCostFewQueries(t *testing.T) {
	t.Parallel()
	e, counter := newCountedEnv(t)
	// A balance that a few hundred reservations cannot exhaust (they are never settled here).
	u := e.seedUser(t, 64, 1<<50)
	grp := e.seedGroup(t, "openai", "1")
	f := fixture{user: u, group: grp, key: e.seedKey(t, u, grp)}
	acc := e.seedAccount(t, f.group, accountSeed{concurrency: 64})
	sum := sha256.Sum256([]byte(f.key))
	goodHash := hex.EncodeToString(sum[:])
	e.mustGrant(t, admitRequest{APIKey: f.key, Model: "gpt-4o"}) // warm the caches

	const (
		total   = 10_000
		workers = 100
	)
	began := time.Now()
	allBefore, keysBefore, authBefore := counter.all.Load(), counter.keys.Load(), counter.authenticate.Load()
	var refused, wrong atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				res := e.admit(t, admitRequest{APIKey: randomKey(t), Model: "gpt-4o"})
				if res.status == http.StatusUnauthorized && res.reject == ReasonAuth {
					refused.Add(1)
				} else {
					wrong.Add(1)
				}
			}
		}()
	}
	// Meanwhile the good key is served, and stays known to the key cache.
	goodServed := 0
	for next.Load() < total {
		g := e.mustGrant(t, admitRequest{APIKey: f.key, Model: "gpt-4o"})
		if err := e.slots.ReleaseMany(context.Background(), []slots.Lease{{Kind: slots.KindUser, ID: f.user, GrantID: g.GrantID},
			{Kind: slots.KindAccount, ID: acc, GrantID: g.GrantID}}); err != nil {
			t.Fatal(err)
		}
		goodServed++
		if !e.svc.keys.Known(goodHash) {
			t.Fatal("the good key was evicted from the key cache")
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	took := time.Since(began)
	if refused.Load() != total || wrong.Load() != 0 {
		t.Fatalf("%d refused 401 auth, %d answered otherwise; want all %d refused", refused.Load(), wrong.Load(), total)
	}
	keyQueries := counter.keys.Load() - keysBefore
	auth := counter.authenticate.Load() - authBefore
	t.Logf("%d random keys in %v: %d statements in all, %d on api_keys (%d authentications of the good key, %d good admissions)",
		total, took.Round(time.Millisecond), counter.all.Load()-allBefore, keyQueries, auth, goodServed)
	// One probe per probeInterval at most, over the run.
	if bound := int64(took/probeInterval) + 10; keyQueries-auth > bound || keyQueries-auth > 400 {
		t.Errorf("%d key probe statements for %d random keys, want at most %d (and a few hundred)", keyQueries-auth, total, bound)
	}
	// The good key is reloaded once per cacheRefresh (in the background, cache.go), never
	// because it was evicted.
	if bound := int64(took/cacheRefresh) + 2; auth > bound {
		t.Errorf("%d authentications of the good key in %v, want at most %d (once per %v)", auth, took, bound, cacheRefresh)
	}
	if e.svc.unknownKeys.Len() > cacheMaxEntries {
		t.Errorf("unknown-key cache holds %d entries, over its bound %d", e.svc.unknownKeys.Len(), cacheMaxEntries)
	}
}

func TestLogSampler(t *testing.T) {
	t.Parallel()
	l := newLogSampler()
	now := time.Unix(1000, 0)
	for i := 0; i < sampleBurst; i++ {
		if ok, sup := l.allow("auth", now); !ok || sup != 0 {
			t.Fatalf("line %d: allow = %v, %d; want true, 0", i, ok, sup)
		}
	}
	for i := 0; i < 7; i++ {
		if ok, _ := l.allow("auth", now.Add(time.Duration(i)*time.Millisecond)); ok {
			t.Fatalf("line %d over the burst was allowed", sampleBurst+i)
		}
	}
	if ok, _ := l.allow("billing", now); !ok {
		t.Fatal("another reason was held back by auth's burst")
	}
	if ok, sup := l.allow("auth", now.Add(sampleWindow)); !ok || sup != 7 {
		t.Fatalf("next window: allow = %v, suppressed %d; want true, 7", ok, sup)
	}
}

// TestUnknownKeyRefusedFromMemory: a key of no row is probed once, then refused from the
// unknown-key cache without a statement; KeysChanged (a key was created) forgets it.
func TestUnknownKeyRefusedFromMemory(t *testing.T) {
	t.Parallel()
	e, counter := newCountedEnv(t)
	key := randomKey(t)
	for i := 0; i < 3; i++ {
		if res := e.admit(t, admitRequest{APIKey: key, Model: "gpt-4o"}); res.status != http.StatusUnauthorized {
			t.Fatalf("admit %d = %d %s, want 401", i, res.status, res.body)
		}
	}
	if n := counter.keys.Load(); n != 1 {
		t.Fatalf("%d key statements for one unknown key asked 3 times, want 1", n)
	}
	e.svc.KeysChanged()
	if res := e.admit(t, admitRequest{APIKey: key, Model: "gpt-4o"}); res.status != http.StatusUnauthorized {
		t.Fatalf("admit = %d, want 401", res.status)
	}
	if n := counter.keys.Load(); n != 2 {
		t.Fatalf("%d key statements after KeysChanged, want 2 (probed again)", n)
	}
}
