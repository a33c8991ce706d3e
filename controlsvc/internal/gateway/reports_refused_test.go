package gateway

import (
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"

	"github.com/poolgate/poolgate/plugin/wire"
)

// Settlement trusts the reservation (docs/billing.md, "Reserve, then settle"): a report
// whose user, key or group disagrees with its request's reservation is refused — not
// stored, not charged, its reservation kept for the sweeper — counted and acknowledged,
// and its slots are released; the matching report then settles on the reservation's holder.
func TestReportDisagreeingWithItsReservationIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	// Another user, in a free group: a report claiming it would bill nothing to anyone.
	other := e.seedUser(t, 5, 10_000_000)
	freeGroup := e.seedGroup(t, "openai", "0")
	e.seedKey(t, other, freeGroup)
	otherKey := e.queryInt(t, `SELECT id FROM api_keys WHERE user_id = $1`, other)
	e.seedKey(t, f.user, f.group)
	secondKey := e.queryInt(t, `SELECT max(id) FROM api_keys WHERE user_id = $1`, f.user)

	tests := []struct {
		name   string
		change func(r *report)
	}{
		{"another user", func(r *report) { r.UserID, r.APIKeyID, r.GroupID = other, otherKey, freeGroup }},
		{"another user only", func(r *report) { r.UserID = other }},
		{"another key of the same user", func(r *report) { r.APIKeyID = secondKey }},
		{"another group", func(r *report) { r.GroupID = freeGroup }},
	}
	const usageJSON = `{"input_tokens":100,"output_tokens":100}`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			balance, otherBalance := e.balance(t, f.user), e.balance(t, other)
			grant := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: 400})
			neighbour := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
			held := e.reserved(t, grant)
			heldAll, neighbourHeld := e.heldMicros(t, f), e.reserved(t, neighbour)
			if held <= 0 {
				t.Fatalf("reservation of %d micros, want > 0", held)
			}
			refusedBefore := e.svc.metrics.reportsRefusedMismatch.Value()

			bad := reportFor(grant, 200, "responses", usageJSON)
			tt.change(&bad)
			for range 2 { // a retry is refused again: it cannot be fixed
				wantAccepted(t, e.sendReports(t, bad, reportFor(neighbour, 200, "responses", usageJSON)), 1)
			}
			if n := e.queryInt(t, `SELECT count(*) FROM usage_records WHERE request_id = $1`, grant.RequestID); n != 0 {
				t.Fatalf("%d records of the refused report, want 0", n)
			}
			if n := e.queryInt(t, `SELECT count(*) FROM usage_attempts WHERE request_id = $1`, grant.RequestID); n != 0 {
				t.Fatalf("%d attempts of the refused report, want 0", n)
			}
			if h, ok := e.hold(t, f.user, grant.RequestID); !ok || h.AmountMicros != held {
				t.Fatal("the refused report's hold is gone")
			}
			if h := e.heldMicros(t, f); h != heldAll-neighbourHeld {
				t.Fatalf("%d micros held, want %d (only the neighbour settled)", h, heldAll-neighbourHeld)
			}
			if b, ob := e.balance(t, f.user), e.balance(t, other); b != balance-costOf100x100 || ob != otherBalance {
				t.Fatalf("balances %d and %d, want %d (the neighbour charged) and %d", b, ob, balance-costOf100x100, otherBalance)
			}
			if got := e.svc.metrics.reportsRefusedMismatch.Value() - refusedBefore; got != 2 {
				t.Fatalf("%s counted %d, want 2", metricReportsRefused, got)
			}
			if us, as := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, f.account); us != 0 || as != 0 {
				t.Fatalf("slots user=%d account=%d after the refusal, want 0 and 0", us, as)
			}

			// The report as the reservation knows it is charged to the reservation's holder.
			wantAccepted(t, e.sendReports(t, reportFor(grant, 200, "responses", usageJSON)), 1)
			if b, ob := e.balance(t, f.user), e.balance(t, other); b != balance-2*costOf100x100 || ob != otherBalance {
				t.Fatalf("balances %d and %d, want %d and %d", b, ob, balance-2*costOf100x100, otherBalance)
			}
			row := e.usageRow(t, grant.RequestID)
			if row.cost != costOf100x100 || row.rate != 1_000_000 {
				t.Fatalf("record %+v, want cost %d at rate 1", row, costOf100x100)
			}
			if h := e.heldMicros(t, f); h != 0 {
				t.Fatalf("%d micros still held", h)
			}
		})
	}
}

// reserved is what a grant's request holds, 0 without a reservation.
func (e *env) reserved(t *testing.T, g wire.Grant) int64 {
	t.Helper()
	h, _ := e.hold(t, g.UserID, g.RequestID)
	return h.AmountMicros
}
