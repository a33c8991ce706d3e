package admission

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/internal/seedtest"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/internal/testenv"
)

// newCountedEnv is newEnv whose Admitter reaches PostgreSQL through a pool that counts its
// statements; the env's own store (seeding, checks) is not counted.
func newCountedEnv(t *testing.T) (*env, *seedtest.QueryCounter) {
	t.Helper()
	st := storetest.Open(t)
	counted, counter := seedtest.Counted(t, st)
	rdb := testenv.RedisClient(t, testenv.RedisURL(t))
	svc := newAdmitter(t, counted, rdb, Config{Wait: testWait}, 0)
	return &env{st: st, rdb: rdb, svc: svc, slots: slots.New(rdb, time.Minute)}, counter
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
	e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o"}) // warm the caches

	const (
		total   = 10_000
		workers = 100
	)
	began := time.Now()
	allBefore, keysBefore, authBefore := counter.All.Load(), counter.Keys.Load(), counter.Authenticate.Load()
	var refused, wrong atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				res := e.admit(t, Request{APIKey: randomKey(t), Model: "gpt-4o"})
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
		g := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o"})
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
	keyQueries := counter.Keys.Load() - keysBefore
	auth := counter.Authenticate.Load() - authBefore
	t.Logf("%d random keys in %v: %d statements in all, %d on api_keys (%d authentications of the good key, %d good admissions)",
		total, took.Round(time.Millisecond), counter.All.Load()-allBefore, keyQueries, auth, goodServed)
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

// TestUnknownKeyRefusedFromMemory: a key of no row is probed once, then refused from the
// unknown-key cache without a statement; KeysChanged (a key was created) forgets it.
func TestUnknownKeyRefusedFromMemory(t *testing.T) {
	t.Parallel()
	e, counter := newCountedEnv(t)
	key := randomKey(t)
	for i := 0; i < 3; i++ {
		if res := e.admit(t, Request{APIKey: key, Model: "gpt-4o"}); res.status != http.StatusUnauthorized {
			t.Fatalf("admit %d = %d %s, want 401", i, res.status, res.body)
		}
	}
	if n := counter.Keys.Load(); n != 1 {
		t.Fatalf("%d key statements for one unknown key asked 3 times, want 1", n)
	}
	e.svc.KeysChanged()
	if res := e.admit(t, Request{APIKey: key, Model: "gpt-4o"}); res.status != http.StatusUnauthorized {
		t.Fatalf("admit = %d, want 401", res.status)
	}
	if n := counter.Keys.Load(); n != 2 {
		t.Fatalf("%d key statements after KeysChanged, want 2 (probed again)", n)
	}
}
