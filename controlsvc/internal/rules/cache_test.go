package rules

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/livecache/livecachetest"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// twoInstances are two caches, as in two controlsvc processes, on one database and Redis,
// both listening for changes.
func twoInstances(t *testing.T, refresh time.Duration) (*store.Store, *Cache, *Cache) {
	t.Helper()
	st := storetest.Open(t)
	caches := livecachetest.Start(t, 2, testenv.RedisURL(t), Channel, func(rdb *redis.Client) (*Cache, error) {
		return NewCache(st, rdb, refresh, nil), nil
	})
	return st, caches[0], caches[1]
}

func TestChangeReachesOtherInstanceWithinASecond(t *testing.T) {
	t.Parallel()
	// The safety-net reload is far away, so only the published change can explain a
	// reload within a second.
	st, a, b := twoInstances(t, time.Hour)
	ctx := context.Background()
	in := Input{Platform: "openai", Status: 500, Body: []byte("quota")}
	if _, ok := b.Rules().Match(in); ok {
		t.Fatal("matched before any rule exists")
	}

	r, err := st.CreatePassthroughRule(ctx, store.PassthroughRule{Name: "q", Enabled: true, ErrorCodes: []int{500},
		MatchMode: ModeAny, PassthroughCode: true, PassthroughBody: true})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := a.Changed(ctx); err != nil {
		t.Fatalf("Changed: %v", err)
	}
	if _, ok := a.Rules().Match(in); !ok {
		t.Fatal("the writing instance does not see its own change at once")
	}
	waitFor(t, began, func() bool { _, ok := b.Rules().Match(in); return ok })

	// A delete propagates the same way.
	if err := st.DeletePassthroughRule(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	if err := b.Changed(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, began, func() bool { _, ok := a.Rules().Match(in); return !ok })
}

func waitFor(t *testing.T, began time.Time, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Since(began) > time.Second {
			t.Fatal("the other instance did not see the change within 1 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPeriodicReloadWithoutMessage(t *testing.T) {
	t.Parallel()
	st, _, b := twoInstances(t, 100*time.Millisecond)
	if _, err := st.CreatePassthroughRule(context.Background(), store.PassthroughRule{Name: "q", Enabled: true,
		Keywords: []string{"x"}, MatchMode: ModeAny, PassthroughCode: true, PassthroughBody: true}); err != nil {
		t.Fatal(err)
	}
	// Nobody publishes: the safety net alone must pick the rule up.
	deadline := time.Now().Add(3 * time.Second)
	for b.Rules().Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the periodic reload never picked up the rule")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
