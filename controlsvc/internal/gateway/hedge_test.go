package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// A hedge (docs/design.md, "Hedged first token") takes one more account slot for the same grant without releasing
// the current one and without waiting; the final report releases both.
func TestHedgeAdmission(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 5, "openai")
	first := e.seedAccount(t, f.group, accountSeed{priority: 1, concurrency: 2})
	second := e.seedAccount(t, f.group, accountSeed{priority: 2, concurrency: 1})
	g := e.mustGrant(t, admission.Request{RequestID: "req_hedge", APIKey: f.key, Model: "gpt-4o", Stream: true})
	if g.AccountID != first {
		t.Fatalf("first grant on account %d, want %d", g.AccountID, first)
	}
	zero := int64(0)
	hedge := admission.Request{RequestID: "req_hedge", GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o", Stream: true,
		Exclude: []int64{first}, Hedge: true, MaxWaitMs: &zero}

	// Refused while the only other account is full, at once: a hedge never waits.
	e.fillAccount(t, second, 1)
	began := time.Now()
	wantError(t, e.admit(t, hedge), http.StatusServiceUnavailable, admission.ReasonNoAccount, "openai", "api_error", "Service temporarily unavailable")
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("a refused hedge took %s: it waited", took)
	}
	if err := e.slots.Release(t.Context(), slots.KindAccount, second, "g_fill_0"); err != nil {
		t.Fatal(err)
	}

	h := e.mustGrant(t, hedge)
	if h.GrantID != g.GrantID || h.AccountID != second {
		t.Fatalf("hedge = grant %s account %d, want grant %s on account %d", h.GrantID, h.AccountID, g.GrantID, second)
	}
	// Both account slots are held by the grant, and still only one user slot.
	if a, b, u := e.count(t, slots.KindAccount, first), e.count(t, slots.KindAccount, second), e.count(t, slots.KindUser, f.user); a != 1 || b != 1 || u != 1 {
		t.Fatalf("slots after the hedge: first %d, second %d, user %d; want 1, 1, 1", a, b, u)
	}
	// No third account: refused, and nothing the grant holds is released.
	hedge.Exclude = []int64{first, second}
	if res := e.admit(t, hedge); res.status != http.StatusServiceUnavailable || res.reject != admission.ReasonNoAccount {
		t.Fatalf("a hedge with every account excluded = %d %q, want no_account", res.status, res.reject)
	}
	if a, b := e.count(t, slots.KindAccount, first), e.count(t, slots.KindAccount, second); a != 1 || b != 1 {
		t.Fatalf("a refused hedge released slots: first %d, second %d", a, b)
	}

	// The report names both attempts (the loser hedge_lost): every slot comes free.
	rep := reportFor(h, 200, "responses", `{"input_tokens":10,"output_tokens":5}`)
	rep.Attempts = []attempt{{AccountID: first, ErrorClass: "client_gone", DurationMs: 900}, {AccountID: second, Status: 200, DurationMs: 100}}
	wantAccepted(t, e.sendReports(t, rep), 1)
	if a, b, u := e.count(t, slots.KindAccount, first), e.count(t, slots.KindAccount, second), e.count(t, slots.KindUser, f.user); a != 0 || b != 0 || u != 0 {
		t.Fatalf("slots after the report: first %d, second %d, user %d; want 0", a, b, u)
	}
}

func TestHedgeRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 5, "openai")
	e.seedAccount(t, f.group, accountSeed{})
	e.seedAccount(t, f.group, accountSeed{})
	tests := []struct {
		name   string
		req    admission.Request
		status int
		reason string
	}{
		{"no grant", admission.Request{APIKey: f.key, Model: "gpt-4o", Hedge: true}, http.StatusBadRequest, admission.ReasonInvalid},
		{"with a failed attempt", admission.Request{APIKey: f.key, Model: "gpt-4o", Hedge: true, GrantID: "g_x",
			Failed: &health.Failure{AccountID: 1, Status: 500, ErrorClass: "upstream_status"}}, http.StatusBadRequest, admission.ReasonInvalid},
		// A grant that holds no user slot (unknown, or already reported) gets no account.
		{"unknown grant", admission.Request{APIKey: f.key, Model: "gpt-4o", Hedge: true, GrantID: "g_unknown"},
			http.StatusServiceUnavailable, admission.ReasonNoAccount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.admit(t, tt.req)
			if res.status != tt.status || res.reject != tt.reason {
				t.Fatalf("got %d %q (%s), want %d %q", res.status, res.reject, res.body, tt.status, tt.reason)
			}
			if n := e.count(t, slots.KindUser, f.user); n != 0 {
				t.Fatalf("a refused hedge left %d user slots", n)
			}
		})
	}
}
