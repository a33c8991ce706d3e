package ledger

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/internal/seedtest"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// countedTerms is the real store's GroupTerms, counting its queries.
type countedTerms struct {
	st      *store.Store
	queries atomic.Int32
}

func (c *countedTerms) GroupTerms(ctx context.Context, pairs []store.UserGroup) (map[store.UserGroup]store.GroupTerms, error) {
	c.queries.Add(1)
	return c.st.GroupTerms(ctx, pairs)
}

// TestCachedTermsFollowChanges: settlement reads a (user, group) pair's terms once per TTL,
// and a change event of the user or the group makes the next batch read them again, so a
// rate change is priced in at once on every instance.
func TestCachedTermsFollowChanges(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	user := seedtest.SeedUser(t, st, 4, 1_000_000)
	other := seedtest.SeedUser(t, st, 4, 1_000_000)
	group := seedtest.SeedGroup(t, st, "openai", "1")
	src := &countedTerms{st: st}
	c := newCachedTerms(src, time.Minute) // no expiry during the test: only the events count
	pair, otherPair := store.UserGroup{UserID: user, GroupID: group}, store.UserGroup{UserID: other, GroupID: group}
	rate := func(want int64, queries int32) {
		t.Helper()
		got, err := c.GroupTerms(ctx, []store.UserGroup{pair, otherPair})
		if err != nil {
			t.Fatal(err)
		}
		if got[pair].RateMicros != want {
			t.Errorf("rate = %d, want %d", got[pair].RateMicros, want)
		}
		if n := src.queries.Load(); n != queries {
			t.Errorf("%d queries so far, want %d", n, queries)
		}
	}
	rate(1_000_000, 1)
	rate(1_000_000, 1) // within the TTL: from memory

	seedtest.Exec(t, st, `UPDATE groups SET rate_multiplier = 2 WHERE id = $1`, group)
	c.Changed(changes.Event{Kind: changes.Group, ID: group + 1000}) // another group's change
	rate(1_000_000, 1)
	c.Changed(changes.Event{Kind: changes.Group, ID: group})
	rate(2_000_000, 2)

	seedtest.Exec(t, st, `INSERT INTO user_group_rates (user_id, group_id, rate_multiplier) VALUES ($1, $2, 0.5)`, user, group)
	c.Changed(changes.Event{Kind: changes.User, ID: other}) // the other user's: drops only its pair
	got, err := c.GroupTerms(ctx, []store.UserGroup{pair})
	if err != nil || got[pair].RateMicros != 2_000_000 || src.queries.Load() != 2 {
		t.Errorf("after another user's change: %+v, %v, %d queries; want the cached 2000000 and 2", got, err, src.queries.Load())
	}
	c.Changed(changes.Event{Kind: changes.User, ID: user})
	rate(500_000, 3) // both pairs read again in one query: the other's was dropped too
}

// TestCachedTermsLeaveOutUnknownGroups: a pair whose group does not exist is missing from
// the answer, as from the store's, and is read again the next time.
func TestCachedTermsLeaveOutUnknownGroups(t *testing.T) {
	st := storetest.Open(t)
	src := &countedTerms{st: st}
	c := NewCachedTerms(src)
	user := seedtest.SeedUser(t, st, 4, 1_000_000)
	missing := store.UserGroup{UserID: user, GroupID: 987654}
	for i := 0; i < 2; i++ {
		got, err := c.GroupTerms(context.Background(), []store.UserGroup{missing})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got[missing]; ok {
			t.Fatalf("terms of an unknown group: %+v", got)
		}
	}
	if n := src.queries.Load(); n != 2 {
		t.Errorf("%d queries, want 2 (an unknown pair is not cached)", n)
	}
}
