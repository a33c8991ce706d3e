package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"
)

// routeEntries waits (bounded) for n entries of a request's routing explanation: an entry
// is written just after its answer, so it may land a moment after the caller has it.
func (e *env) routeEntries(t *testing.T, requestID string, n int) []routing.Entry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := e.svc.routes.Read(context.Background(), requestID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("routing of %s = %+v, want %d entries", requestID, got, n)
			}
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reasonsOf maps each candidate's account to its reason (and pause reason).
func reasonsOf(e routing.Entry) map[int64]string {
	out := make(map[int64]string, len(e.Candidates))
	for _, c := range e.Candidates {
		out[c.AccountID] = c.Reason + strings.TrimSuffix(":"+c.PauseReason, ":")
	}
	return out
}

// Every account of the group appears in the admission's entry with why it was skipped,
// and the chosen one as chosen; the failover re-admission records its failed attempt and
// the failed account as excluded; a refused re-admission records its refusal.
func TestRoutingEntriesSayWhyAccountsWereSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	chosen := e.seedAccount(t, f.group, accountSeed{priority: 1})
	eligible := e.seedAccount(t, f.group, accountSeed{priority: 5})
	busy := e.seedAccount(t, f.group, accountSeed{priority: 0, concurrency: 1})
	e.fillAccount(t, busy, 1)
	excluded := e.seedAccount(t, f.group, accountSeed{priority: 1})
	notMapped := e.seedAccount(t, f.group, accountSeed{mapping: `{"claude-*":""}`})
	noConc := e.seedAccount(t, f.group, accountSeed{})
	e.exec(t, `UPDATE accounts SET concurrency = 0 WHERE id = $1`, noConc)
	limited := e.seedAccount(t, f.group, accountSeed{})
	e.exec(t, `UPDATE accounts SET rate_limited_until = now() + interval '1 hour' WHERE id = $1`, limited)
	overloaded := e.seedAccount(t, f.group, accountSeed{})
	e.exec(t, `UPDATE accounts SET overloaded_until = now() + interval '1 hour' WHERE id = $1`, overloaded)
	paused := e.seedAccount(t, f.group, accountSeed{})
	e.exec(t, `UPDATE accounts SET paused_until = now() + interval '1 hour', pause_reason = 'insufficient_quota' WHERE id = $1`, paused)
	blocked := e.seedAccount(t, f.group, accountSeed{})
	e.exec(t, `INSERT INTO account_model_blocks (account_id, model, blocked_until) VALUES ($1, 'gpt-4o', now() + interval '1 hour')`, blocked)

	g := e.mustGrant(t, admission.Request{RequestID: "req_route_skips", APIKey: f.key, Model: "gpt-4o", Exclude: []int64{excluded}})
	if g.AccountID != chosen {
		t.Fatalf("granted account %d, want %d", g.AccountID, chosen)
	}
	first := e.routeEntries(t, "req_route_skips", 1)[0]
	wantFirst := map[int64]string{
		chosen: routing.Chosen, eligible: routing.Eligible, busy: routing.Busy, excluded: routing.Excluded,
		notMapped: routing.NotMapped, noConc: routing.NoConcurrency, limited: routing.RateLimited,
		overloaded: routing.Overloaded, paused: routing.Paused + ":insufficient_quota", blocked: routing.ModelBlocked,
	}
	if got := reasonsOf(first); !equalReasons(got, wantFirst) {
		t.Errorf("first admission's candidates = %v, want %v", got, wantFirst)
	}
	if first.Kind != routing.KindFirst || first.AccountID != chosen || first.Model != "gpt-4o" || first.Failed != nil ||
		first.Refusal != "" || first.CandidatesCut != 0 || first.At.IsZero() {
		t.Errorf("first entry = %+v", first)
	}

	next := e.mustGrant(t, admission.Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o",
		Exclude: []int64{excluded, chosen}, Failed: &health.Failure{AccountID: chosen, Status: 500, ErrorClass: "upstream_status"}})
	if next.AccountID != eligible {
		t.Fatalf("failover granted account %d, want %d", next.AccountID, eligible)
	}
	second := e.routeEntries(t, "req_route_skips", 2)[1]
	if second.Kind != routing.KindFailover || second.AccountID != eligible || second.Failed == nil ||
		*second.Failed != (routing.Failed{AccountID: chosen, Status: 500, ErrorClass: "upstream_status"}) {
		t.Errorf("failover entry = %+v (failed %+v)", second, second.Failed)
	}
	if r := reasonsOf(second); r[chosen] != routing.Excluded || r[eligible] != routing.Chosen {
		t.Errorf("failover candidates = %v, want %d excluded and %d chosen", r, chosen, eligible)
	}

	res := e.admit(t, admission.Request{RequestID: "req_route_skips", GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o",
		Exclude: []int64{excluded, chosen, eligible}, Failed: &health.Failure{AccountID: eligible, Status: 502, ErrorClass: "upstream_status"}})
	if res.reject != admission.ReasonNoAccount {
		t.Fatalf("last re-admission = %d %s, want refused no_account", res.status, res.body)
	}
	third := e.routeEntries(t, "req_route_skips", 3)[2]
	if third.Refusal != admission.ReasonNoAccount || third.AccountID != 0 || reasonsOf(third)[eligible] != routing.Excluded {
		t.Errorf("refused re-admission's entry = %+v", third)
	}

	// A refused first admission leaves no grant and no record: nothing is kept for it,
	// though it got as far as the candidates.
	other := e.seedFixture(t, 10, "openai")
	e.seedAccount(t, other.group, accountSeed{mapping: `{"gpt-4o":""}`})
	if res := e.admit(t, admission.Request{RequestID: "req_route_refused", APIKey: other.key, Model: "o3"}); res.reject != admission.ReasonModelNotFound {
		t.Fatalf("admission of an unserved model = %d %s, want model_not_found", res.status, res.body)
	}
	e.mustGrant(t, admission.Request{RequestID: "req_route_after", APIKey: other.key, Model: "gpt-4o"})
	e.routeEntries(t, "req_route_after", 1) // written after the refusal's would have been
	if got, err := e.svc.routes.Read(context.Background(), "req_route_refused"); err != nil || got != nil {
		t.Errorf("refused first admission's routing = %+v, %v; want none", got, err)
	}
}

// A session's account is recorded as sticky, and the bound account noted.
func TestRoutingEntryRecordsStickyAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	e.seedAccount(t, f.group, accountSeed{priority: 1})
	e.seedAccount(t, f.group, accountSeed{priority: 2})
	hash := strings.Repeat("cd", 32)
	first := e.mustGrant(t, admission.Request{RequestID: "req_sticky_1", APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
	e.release(t, first)
	e.mustGrant(t, admission.Request{RequestID: "req_sticky_2", APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
	got := e.routeEntries(t, "req_sticky_2", 1)[0]
	if got.StickyAccountID != first.AccountID || reasonsOf(got)[first.AccountID] != routing.Sticky {
		t.Errorf("entry = %+v, want account %d sticky", got, first.AccountID)
	}
}

func equalReasons(a, b map[int64]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Settlement moves the explanation into the record, in the batch's own statement, and
// deletes the Redis list; the report's attempt flags are stored, and breaker_open comes from
// the admission that settled the failed attempt.
func TestReportStoresRoutingAndAttemptReasons(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	a1 := e.seedAccount(t, f.group, accountSeed{priority: 1})
	a2 := e.seedAccount(t, f.group, accountSeed{priority: 2})
	g := e.mustGrant(t, admission.Request{RequestID: "req_route_settle", APIKey: f.key, Model: "gpt-4o"})
	next := e.failOver(t, f.key, "gpt-4o", g, health.Failure{Status: 500, ErrorClass: "upstream_status"})
	if g.AccountID != a1 || next.AccountID != a2 {
		t.Fatalf("grants went to %d then %d, want %d then %d", g.AccountID, next.AccountID, a1, a2)
	}
	entries := e.routeEntries(t, "req_route_settle", 2)
	// Stands for the health helper's result (admission admit.go's integration point): the breaker
	// of the first account opened with that failure.
	entries[1].Failed.BreakerOpened = true
	if err := e.svc.routes.Delete(context.Background(), []string{"req_route_settle"}); err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		e.svc.routeWriter.Add(context.Background(), "req_route_settle", en)
	}

	rep := reportFor(next, 200, "responses", `{"input_tokens":10,"output_tokens":5}`)
	rep.Attempts = []attempt{
		{AccountID: a1, Status: 500, ErrorClass: "upstream_status", RetriedSameAccount: true},
		{AccountID: a1, Status: 500, ErrorClass: "upstream_status"},
		{AccountID: a2, Status: 0, ErrorClass: "canceled", HedgeLost: true},
		{AccountID: a2, Status: 200},
	}
	wantAccepted(t, e.sendReports(t, rep), 1)

	type flags struct{ breaker, hedgeLost, retriedSame bool }
	rows, err := e.st.UsageAttempts(context.Background(), "req_route_settle")
	if err != nil {
		t.Fatal(err)
	}
	want := []flags{{false, false, true}, {true, false, false}, {false, true, false}, {false, false, false}}
	if len(rows) != len(want) {
		t.Fatalf("attempts = %+v, want %d", rows, len(want))
	}
	for i, r := range rows {
		if got := (flags{r.BreakerOpen, r.HedgeLost, r.RetriedSameAccount}); got != want[i] {
			t.Errorf("attempt %d flags = %+v, want %+v", i+1, got, want[i])
		}
	}
	raw, err := e.st.UsageRouting(context.Background(), "req_route_settle")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := routing.Decode(raw)
	if err != nil || len(stored) != 2 || stored[0].AccountID != a1 || stored[1].AccountID != a2 ||
		stored[1].Failed == nil || !stored[1].Failed.BreakerOpened {
		t.Fatalf("stored routing = %s (%v)", raw, err)
	}
	if n, err := e.rdb.Exists(context.Background(), routing.Key("req_route_settle")).Result(); err != nil || n != 0 {
		t.Errorf("the Redis list of a settled request exists (%d, %v), want deleted", n, err)
	}
}

// A NUL in a failed attempt's error class would make jsonb refuse the whole report batch:
// the explanation keeps the class without it, and the batch is stored.
func TestRoutingEntryDropsNUL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	e.seedAccount(t, f.group, accountSeed{priority: 1})
	e.seedAccount(t, f.group, accountSeed{priority: 2})
	g := e.mustGrant(t, admission.Request{RequestID: "req_route_nul", APIKey: f.key, Model: "gpt-4o"})
	next := e.failOver(t, f.key, "gpt-4o", g, health.Failure{Status: 500, ErrorClass: "upstream\x00_status"})
	e.routeEntries(t, "req_route_nul", 2)
	rep := reportFor(next, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)
	rep.Attempts = []attempt{{AccountID: g.AccountID, Status: 500, ErrorClass: "upstream_status"}, {AccountID: next.AccountID, Status: 200}}
	wantAccepted(t, e.sendReports(t, rep), 1)
	raw, err := e.st.UsageRouting(context.Background(), "req_route_nul")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := routing.Decode(raw)
	if err != nil || len(stored) != 2 || stored[1].Failed == nil || stored[1].Failed.ErrorClass != "upstream_status" {
		t.Fatalf("stored routing = %s (%v)", raw, err)
	}
}
