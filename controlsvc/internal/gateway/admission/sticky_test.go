package admission

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"

	"github.com/poolgate/poolgate/plugin/wire"
)

func TestStickySessionKeepsItsAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 5, "openai")
	a1 := e.seedAccount(t, f.group, accountSeed{})
	a2 := e.seedAccount(t, f.group, accountSeed{})
	hash := strings.Repeat("ab", 32)
	release := func(g wire.Grant) {
		if err := e.slots.ReleaseMany(context.Background(), []slots.Lease{
			{Kind: slots.KindUser, ID: g.UserID, GrantID: g.GrantID},
			{Kind: slots.KindAccount, ID: g.AccountID, GrantID: g.GrantID}}); err != nil {
			t.Fatal(err)
		}
	}
	first := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
	release(first)
	for i := 0; i < 6; i++ {
		g := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
		if g.AccountID != first.AccountID {
			t.Fatalf("request %d went to account %d, the session is bound to %d", i, g.AccountID, first.AccountID)
		}
		release(g)
	}
	// Excluded (failed over) in a request: another account serves it and takes the binding.
	other := a1
	if first.AccountID == a1 {
		other = a2
	}
	g := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash, Exclude: []int64{first.AccountID}})
	if g.AccountID != other {
		t.Fatalf("with the bound account excluded: account %d, want %d", g.AccountID, other)
	}
	release(g)
	if b := e.binding(t, f.group, hash); b != (binding{account: other, preferred: first.AccountID}) {
		t.Fatalf("binding = %+v, want %d remembering %d", b, other, first.AccountID)
	}
	res := e.admit(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: "not-hex"})
	wantError(t, res, 400, ReasonInvalid, "openai", "invalid_request_error", "Invalid session hash")
}

// A sticky queue that filled between reading the loads and entering it sends the request on
// to the other accounts, not to a 429: the loads are a snapshot (acquireAccount).
func TestStickyQueueFilledMeanwhilePlacesTheRequestElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	group := e.seedGroup(t, "openai", "1")
	sticky := e.seedAccount(t, group, accountSeed{concurrency: 1})
	other := e.seedAccount(t, group, accountSeed{concurrency: 1})
	busy := slots.Entry{Kind: slots.KindAccount, ID: sticky, GrantID: "g_busy", Limit: 1}
	if res, err := e.slots.Enter(ctx, busy); err != nil || res != slots.Held {
		t.Fatalf("holding the sticky account: %d %v", res, err)
	}
	max := e.svc.wait.StickyMaxWaiters
	for i := 0; i < max; i++ {
		w := slots.Entry{Kind: slots.KindAccount, ID: sticky, GrantID: "g_wait" + strings.Repeat("x", i+1), Limit: 1,
			MaxWaiters: max, WaitTTL: time.Minute}
		if res, err := e.slots.Enter(ctx, w); err != nil || res != slots.Queued {
			t.Fatalf("waiter %d: %d %v", i, res, err)
		}
	}
	cands := []candidate{
		{acc: &groupAccount{CandidateAccount: store.CandidateAccount{ID: sticky, Concurrency: 1}}},
		{acc: &groupAccount{CandidateAccount: store.CandidateAccount{ID: other, Concurrency: 1}}},
	}
	stale := map[int64]slots.Load{sticky: {Active: 1}, other: {}} // read before the queue filled
	got, rej, err := e.svc.acquireAccount(ctx, cands, stale, "g_late",
		&session{hash: strings.Repeat("cd", 32), bound: binding{account: sticky}}, true)
	if err != nil || rej != nil {
		t.Fatalf("acquireAccount: rejection %v, error %v; want the other account", rej, err)
	}
	if got.acc.ID != other {
		t.Fatalf("placed on account %d, want %d", got.acc.ID, other)
	}
}
