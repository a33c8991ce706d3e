package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/prices"
)

// TestReservationIsWhatIsAvailable (docs/billing.md, "Reserve, then settle"): a reservation is min(estimate, available);
// a request is refused only when the available amount cannot cover its input estimate, and
// then with a message that says what it may cost; on /v1/messages that is Anthropic's 402
// billing_error, on OpenAI paths 403 with OpenAI's insufficient_quota code. After an
// under-reserved request nothing is available, so a second one waits for it to settle: one
// request at a time may be under-reserved (the overspend bound of docs/billing.md).
func TestReservationIsWhatIsAvailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name     string
		platform string
		balance  int64
		req      admission.Request
		wantHeld int64 // granted: the reservation
		status   int   // refused: status, type, message
		errType  string
		message  string
	}{
		{name: "$3 covers part of an Opus 4.1 request of 64000 tokens", platform: "anthropic", balance: 3_000_000,
			req:      admission.Request{Model: "claude-opus-4-1", Path: "/v1/messages", InputBytes: 4000, MaxOutputTokens: 64000},
			wantHeld: 3_000_000},
		{name: "$1 covers part of an Opus 4.8 request", platform: "anthropic", balance: 1_000_000,
			req:      admission.Request{Model: "claude-opus-4-8", Path: "/v1/messages", InputBytes: 4000, MaxOutputTokens: 64000},
			wantHeld: 1_000_000},
		{name: "the whole estimate when it is less than the balance", platform: "anthropic", balance: 3_000_000,
			req:      admission.Request{Model: "claude-opus-4-8", Path: "/v1/messages", InputBytes: 4000, MaxOutputTokens: 64000},
			wantHeld: 10_000 + 1_600_000},
		{name: "less than the input estimate, /v1/messages", platform: "anthropic", balance: 1000,
			req:    admission.Request{Model: "claude-opus-4-8", Path: "/v1/messages", InputBytes: 4000, MaxOutputTokens: 64000},
			status: 402, errType: "billing_error",
			message: "Insufficient balance: $0.00 available; this request may cost up to $1.61 (max_tokens 64000 on claude-opus-4-8)"},
		{name: "less than the input estimate, OpenAI path", platform: "openai", balance: 9000,
			req:    admission.Request{Model: "gpt-5.5", Path: "/v1/chat/completions", InputBytes: 4000, MaxOutputTokens: 1000},
			status: 403, errType: "billing_error",
			message: "Insufficient balance: $0.00 available; this request may cost up to $0.04 (max_tokens 1000 on gpt-5.5)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedBillFixture(t, tt.platform, tt.balance)
			e.exec(t, `UPDATE groups SET max_reserve_micros = 5000000 WHERE id = $1`, f.group)
			req := tt.req
			req.APIKey = f.key
			res := e.admit(t, req)
			if tt.status != 0 {
				shape := ""
				if req.Path == admission.AnthropicPath {
					shape = "anthropic"
				}
				wantBillingError(t, res, tt.status, admission.ReasonBilling, shape, tt.errType, tt.message)
				e.wantNothingHeld(t, f, 0)
				return
			}
			if res.status != 200 {
				t.Fatalf("status %d (%s), want a grant", res.status, res.body)
			}
			if held := e.heldMicros(t, f); held != tt.wantHeld {
				t.Fatalf("reserved %d micros, want %d", held, tt.wantHeld)
			}
			if tt.wantHeld < tt.balance {
				return
			}
			// Under-reserved: nothing is left for a second request until this one settles.
			second := req
			second.RequestID = ""
			res = e.admit(t, second)
			wantBillingError(t, res, 402, admission.ReasonBilling, "anthropic", "billing_error", "Insufficient balance: $0.00 available; ...")
			if held := e.heldMicros(t, f); held != tt.wantHeld {
				t.Errorf("reserved %d micros after the refusal, want still %d", held, tt.wantHeld)
			}
		})
	}
}

// TestUnpricedModelIsCounted: a refused unpriced model is counted for the operator's list
// (GET /api/v1/admin/prices/unpriced), and so is one a group serves unpriced.
func TestUnpricedModelIsCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	e.exec(t, `UPDATE accounts SET model_mapping = '{"gpt-4o":"gpt-counted-test"}' WHERE id = $1`, f.account)
	res := e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: 100})
	wantError(t, res, 400, admission.ReasonInvalid, "openai", "invalid_request_error", "No price configured for model gpt-counted-test")
	e.exec(t, `UPDATE groups SET allow_unpriced = true WHERE id = $1`, f.group)
	time.Sleep(cacheTTL + 100*time.Millisecond) // the key cache holds the old group
	if res := e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: 100}); res.status != 200 {
		t.Fatalf("unpriced in an allow_unpriced group: %d %s", res.status, res.body)
	}
	got, err := prices.Unpriced(context.Background(), e.rdb, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range got {
		if m.Model == "gpt-counted-test" {
			found = m.Count == 2
		}
	}
	if !found {
		t.Errorf("unpriced models %+v, want gpt-counted-test twice", got)
	}
}
