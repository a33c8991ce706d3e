package gateway

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"

	"github.com/poolgate/poolgate/plugin/wire"
)

// TestReadmissionNamingAnotherAccountIsRefused: a re-admission's failed attempt must name
// the account the grant holds; one naming another account (or coming without a grant) is
// refused, marks nothing and leaves the grant's own slot alone.
func TestReadmissionNamingAnotherAccountIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 5, "openai")
	primary := e.seedAccount(t, f.group, accountSeed{priority: 1})
	other := e.seedAccount(t, f.group, accountSeed{priority: 2})
	tests := []struct {
		name       string
		grantID    func(g wire.Grant) string
		failed     int64
		wantStatus int
	}{
		{name: "another account of the group", grantID: func(g wire.Grant) string { return g.GrantID }, failed: other, wantStatus: http.StatusConflict},
		{name: "an account that does not exist", grantID: func(g wire.Grant) string { return g.GrantID }, failed: other + 1000, wantStatus: http.StatusConflict},
		{name: "another grant's id", grantID: func(wire.Grant) string { return "g_not-this-one" }, failed: primary, wantStatus: http.StatusConflict},
		{name: "no grant at all", grantID: func(wire.Grant) string { return "" }, failed: other, wantStatus: http.StatusBadRequest},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := e.mustGrant(t, admission.Request{RequestID: fmt.Sprintf("req_mis_%d", i), APIKey: f.key, Model: "gpt-4o"})
			if g.AccountID != primary {
				t.Fatalf("first choice %d, want %d", g.AccountID, primary)
			}
			before := e.svc.metrics.readmitRefusedAccount.Value()
			res := e.admit(t, admission.Request{RequestID: g.RequestID, GrantID: tt.grantID(g), APIKey: f.key, Model: "gpt-4o",
				Exclude: []int64{tt.failed}, Failed: &health.Failure{AccountID: tt.failed, Status: 401, ErrorClass: "credential"}})
			if res.status != tt.wantStatus || res.reject != admission.ReasonInvalid {
				t.Fatalf("re-admission = %d %s (reject %q), want %d invalid", res.status, res.body, res.reject, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusConflict {
				if got := e.svc.metrics.readmitRefusedAccount.Value() - before; got != 1 {
					t.Fatalf("%s counted %d, want 1", metricReadmitRefused, got)
				}
			}
			for _, acc := range []int64{primary, other} {
				if n := e.queryInt(t, `SELECT count(*) FROM accounts WHERE id = $1 AND paused_until IS NOT NULL`, acc); n != 0 {
					t.Fatalf("account %d was paused by a failed attempt its request never made", acc)
				}
			}
			if n := e.count(t, slots.KindAccount, primary); n != 1 {
				t.Fatalf("%d leases on the grant's account, want its 1 kept", n)
			}
			// The request's own report releases everything as usual.
			wantAccepted(t, e.sendReports(t, reportFor(g, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)), 1)
			if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, primary); u != 0 || a != 0 {
				t.Fatalf("slots user=%d account=%d after the report, want 0 and 0", u, a)
			}
		})
	}

	t.Run("the grant's own account is marked", func(t *testing.T) {
		g := e.mustGrant(t, admission.Request{RequestID: "req_own", APIKey: f.key, Model: "gpt-4o"})
		again := e.mustGrant(t, admission.Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o",
			Exclude: []int64{g.AccountID}, Failed: &health.Failure{AccountID: g.AccountID, Status: 401, ErrorClass: "credential"}})
		if again.AccountID != other {
			t.Fatalf("failed over to %d, want %d", again.AccountID, other)
		}
		if n := e.queryInt(t, `SELECT count(*) FROM accounts WHERE id = $1 AND paused_until > now()`, primary); n != 1 {
			t.Fatal("the grant's own failed account was not paused")
		}
		wantAccepted(t, e.sendReports(t, reportFor(again, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)), 1)
	})
}

// TestReportWithoutGrantIsRefused: a report settles only a request controlsvc admitted: one
// for a request id that has no reservation and no record is refused (not stored, nobody
// charged, no account marked), counted and acknowledged; a granted report beside it and its
// replay are served as usual.
func TestReportWithoutGrantIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	const usageJSON = `{"input_tokens":100,"output_tokens":100}`
	forged := reportFor(g, 401, "responses", usageJSON)
	forged.RequestID, forged.GrantID = fmt.Sprintf("req_forged_%d", time.Now().UnixNano()), "g_forged"
	forged.Attempts = []attempt{{AccountID: f.account, Status: 401, ErrorClass: "credential"}}
	balance := e.balance(t, f.user)
	before := e.svc.metrics.reportsRefusedUngranted.Value()
	for range 2 { // a retry is refused again, and the granted report is a duplicate
		wantAccepted(t, e.sendReports(t, forged, reportFor(g, 200, "responses", usageJSON)), 1)
	}
	if n := e.queryInt(t, `SELECT count(*) FROM usage_records WHERE request_id = $1`, forged.RequestID); n != 0 {
		t.Fatalf("%d records of the report without a grant, want 0", n)
	}
	if got := e.svc.metrics.reportsRefusedUngranted.Value() - before; got != 2 {
		t.Fatalf("no_grant refusals counted %d, want 2", got)
	}
	if b := e.balance(t, f.user); b != balance-costOf100x100 {
		t.Fatalf("balance %d, want %d (only the granted report charged)", b, balance-costOf100x100)
	}
	if n := e.queryInt(t, `SELECT count(*) FROM accounts WHERE id = $1 AND paused_until IS NOT NULL`, f.account); n != 0 {
		t.Fatal("a report without a grant paused an account")
	}
	if n := e.queryInt(t, `SELECT count(*) FROM usage_records WHERE request_id = $1`, g.RequestID); n != 1 {
		t.Fatalf("%d records of the granted report, want 1", n)
	}
}
