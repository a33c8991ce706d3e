package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

// TestPrivateUpstreamRefusedThroughTraefik (docs/design.md, "Upstream addresses"): a stack
// whose Traefik has POOLGATE_ALLOW_PRIVATE_UPSTREAMS=false, so traefik-dynamic.yml hands
// the plugin allowPrivateUpstreams: 'false' (controlsvc keeps the flag on to accept the
// fake's http://127.0.0.1 account). The plugin refuses to dial the fake: the client gets
// 502 in the API's format, the fake sees no request, the account is not paused and the
// usage record says upstream_refused.
func TestPrivateUpstreamRefusedThroughTraefik(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := stack.TestOptions(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.TraefikEnv = []string{"POOLGATE_ALLOW_PRIVATE_UPSTREAMS=false"} // after the stack's =1: the last one wins
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	strict, err := stack.Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting the strict stack: %v", err)
	}
	defer strict.Stop()
	// The helpers talk to gw; e2e tests run one at a time, so it is swapped for this one.
	prev := gw
	gw = strict
	defer func() { gw = prev }()

	cred := unique("sk-private")
	tn, ids := newTenant(t, accountSpec{Credential: cred, Priority: 1})
	code, _, body := post(t, "/v1/chat/completions", tn.Key, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, nil)
	if code != 502 || !strings.Contains(body, `"Upstream request failed"`) {
		t.Fatalf("got %d %s, want 502 Upstream request failed", code, body)
	}
	if n := len(upstreamRequestsFor(t, cred)); n != 0 {
		t.Errorf("the fake upstream on 127.0.0.1 got %d requests, want none", n)
	}
	recs := usageFor(t, tn.KeyID, 1)
	if recs[0]["error_class"] != "upstream_refused" {
		t.Errorf("usage record %v, want error_class upstream_refused", recs[0])
	}
	acct := mustAdmin(t, "GET", fmt.Sprintf("/accounts/%d", ids[0]), nil)
	if st, _ := acct["state"].(obj); st == nil || st["paused_until"] != nil {
		t.Errorf("account state %v: a refused address must not pause the account", acct["state"])
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, ids)
}
