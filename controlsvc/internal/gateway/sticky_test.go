package gateway

import (
	"context"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

func TestStickySessionKeepsItsAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 5, "openai")
	a1 := e.seedAccount(t, f.group, accountSeed{})
	a2 := e.seedAccount(t, f.group, accountSeed{})
	hash := strings.Repeat("ab", 32)
	release := func(g admitReply) {
		if err := e.slots.ReleaseMany(context.Background(), []slots.Lease{
			{Kind: slots.KindUser, ID: g.UserID, GrantID: g.GrantID},
			{Kind: slots.KindAccount, ID: g.AccountID, GrantID: g.GrantID}}); err != nil {
			t.Fatal(err)
		}
	}
	first := e.mustGrant(t, admitRequest{APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
	release(first)
	for i := 0; i < 6; i++ {
		g := e.mustGrant(t, admitRequest{APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
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
	g := e.mustGrant(t, admitRequest{APIKey: f.key, Model: "gpt-4o", SessionHash: hash, Exclude: []int64{first.AccountID}})
	if g.AccountID != other {
		t.Fatalf("with the bound account excluded: account %d, want %d", g.AccountID, other)
	}
	release(g)
	if n, err := e.rdb.Get(context.Background(), stickyKey(f.group, hash)).Int64(); err != nil || n != other {
		t.Fatalf("binding = %d %v, want %d", n, err, other)
	}
	res := e.admit(t, admitRequest{APIKey: f.key, Model: "gpt-4o", SessionHash: "not-hex"})
	wantError(t, res, 400, ReasonInvalid, "openai", "invalid_request_error", "Invalid session hash")
}
