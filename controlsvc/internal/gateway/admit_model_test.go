package gateway

import (
	"strings"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/ledger"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// A model name is bounded: it goes into the request's completion report as it is, and a
// report batch over maxReportBody is refused whole (400), so that a client whose model names
// are near the admit body's 1 MiB (priced by a prefix such as "gpt-4o*") could make the batch
// that carries other users' reports unstorable, and their answers unbilled.
func TestAdmitRefusesOverlongModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	// The shipped catalogue has exact names only: these made-up names are served unpriced.
	e.exec(t, `UPDATE groups SET allow_unpriced = true WHERE id = $1`, f.group)
	tests := []struct {
		name      string
		model     string
		wantGrant bool
	}{
		{"at the bound", "gpt-4o-" + strings.Repeat("x", ledger.MaxModelLen-len("gpt-4o-")), true},
		{"one byte over", "gpt-4o-" + strings.Repeat("x", ledger.MaxModelLen-len("gpt-4o-")+1), false},
		{"near 1 MiB", "gpt-4o-" + strings.Repeat("x", 900<<10), false},
	}
	for _, tt := range tests {
		res := e.admit(t, admission.Request{APIKey: f.key, Model: tt.model})
		if tt.wantGrant {
			if res.status != 200 {
				t.Fatalf("%s: status %d (%s), want a grant", tt.name, res.status, res.body)
			}
			continue
		}
		wantError(t, res, 400, admission.ReasonInvalid, "openai", "invalid_request_error", "Invalid model")
	}
	if n := e.heldOf(t, f.user).Holds; n != 1 {
		t.Fatalf("%d holds, want 1 (the grant at the bound)", n)
	}
	if us := e.count(t, slots.KindUser, f.user); us != 1 {
		t.Fatalf("user holds %d slots, want 1", us)
	}
}

// A NUL cannot be stored in a PostgreSQL text column: a report carrying one would fail its
// whole batch with a 500, which the plugin retries forever, holding back every report
// batched with it. Admission refuses such a model name, and control characters with it.
func TestAdmitRefusesModelWithControlCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	for _, model := range []string{"gpt-4o\x00", "gpt-4o\n", "gpt-4o\x7f"} {
		res := e.admit(t, admission.Request{APIKey: f.key, Model: model})
		wantError(t, res, 400, admission.ReasonInvalid, "openai", "invalid_request_error", "Invalid model")
	}
	if us := e.count(t, slots.KindUser, f.user); us != 0 {
		t.Fatalf("user holds %d slots", us)
	}
}

// A report is stored even with a NUL in its model (a gateway admitted before the check
// above): it must not fail its batch, which would hold back every report in it.
func TestReportWithNULModelIsStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	grant := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	rep := reportFor(grant, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)
	rep.Model = "gpt-4o\x00"
	wantAccepted(t, e.sendReports(t, rep), 1)
	if row := e.usageRow(t, grant.RequestID); row.cost <= 0 {
		t.Fatalf("record cost %d, want the usage billed", row.cost)
	}
}
