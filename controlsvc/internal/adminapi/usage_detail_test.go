package adminapi

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// A settled failover's routing explanation: each attempt says why it ended and carries the
// candidates of the admission that granted its account; the routing list has every
// admission, numbered.
func TestUsageDetailRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user, group := e.createUser("routing"), e.createGroup("routing", "openai")
	a1, a2, a3 := e.createAccount("r-first", group), e.createAccount("r-second", group), e.createAccount("r-third", group)
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	entries := []routing.Entry{
		{At: at, Kind: routing.KindFirst, Model: "gpt-4o", AccountID: a1, Candidates: []routing.Candidate{
			{AccountID: a1, Reason: routing.Chosen}, {AccountID: a2, Reason: routing.Eligible},
			{AccountID: a3, Reason: routing.Paused, PauseReason: "insufficient_quota"}}},
		{At: at.Add(time.Second), Kind: routing.KindFailover, Model: "gpt-4o", AccountID: a2,
			Failed: &routing.Failed{AccountID: a1, Status: 500, ErrorClass: "upstream_status", BreakerOpened: true},
			Candidates: []routing.Candidate{{AccountID: a1, Reason: routing.Excluded}, {AccountID: a2, Reason: routing.Chosen},
				{AccountID: a3, Reason: routing.Paused, PauseReason: "insufficient_quota"}}, CandidatesCut: 2},
	}
	raw, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.st.WriteUsage(t.Context(), store.UsageWrite{
		RequestID: "req_route_settled", UserID: user, APIKeyID: 1, GroupID: group, AccountID: a2, Path: "/v1/responses",
		Model: "gpt-4o", Status: 200, RateMicros: 1_000_000, Routing: raw,
		Attempts: []store.AttemptWrite{
			{AccountID: a1, Status: 500, ErrorClass: "upstream_status", RetriedSameAccount: true},
			{AccountID: a1, Status: 500, ErrorClass: "upstream_status", BreakerOpen: true},
			{AccountID: a2, Status: 200},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got usageDetailView
	e.mustCall(http.MethodGet, "/api/v1/admin/usage/req_route_settled", nil, http.StatusOK, &got)
	if !got.Settled || got.RequestID != "req_route_settled" || got.AccountID != a2 {
		t.Errorf("record = %+v settled %v", got.usageView, got.Settled)
	}
	type reasons struct {
		admission                       int
		breaker, hedgeLost, retriedSame bool
		candidates                      []routing.Candidate
		cut                             int
	}
	want := []reasons{
		{1, false, false, true, entries[0].Candidates, 0},
		{1, true, false, false, entries[0].Candidates, 0}, // the same-account retry shares the admission
		{2, false, false, false, entries[1].Candidates, 2},
	}
	if len(got.Attempts) != len(want) {
		t.Fatalf("attempts = %+v, want %d", got.Attempts, len(want))
	}
	for i, w := range want {
		a := got.Attempts[i]
		g := reasons{-1, a.BreakerOpen, a.HedgeLost, a.RetriedSameAccount, a.Candidates, a.CandidatesCut}
		if a.Admission != nil {
			g.admission = *a.Admission
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("attempt %d = %+v, want %+v", i+1, g, w)
		}
	}
	if len(got.Routing) != 2 || got.Routing[0].Admission != 1 || got.Routing[1].Admission != 2 ||
		got.Routing[1].Failed == nil || !got.Routing[1].Failed.BreakerOpened || got.Routing[1].Kind != routing.KindFailover {
		t.Errorf("routing = %+v", got.Routing)
	}
	// The listing shows the record without the explanation (it is read only here).
	_, body := e.call(http.MethodGet, "/api/v1/admin/usage?group_id="+itoa(group), nil)
	if strings.Contains(string(body), "candidates") || !strings.Contains(string(body), "req_route_settled") {
		t.Errorf("listing = %s, want the record without its routing", body)
	}
}

// A request in flight has no record: its explanation comes from Redis, settled false. An
// unknown or overlong request id is a 404 in the admin API's error format; a record without
// an explanation shows empty lists, never null.
func TestUsageDetailPendingAndUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	log := routing.NewLog(e.rdb)
	id := "req_route_pending_" + strings.ReplaceAll(t.Name(), "/", "_")
	t.Cleanup(func() { _ = log.Delete(t.Context(), []string{id}) })
	w := log.NewWriter(nil)
	w.Add(t.Context(), id, routing.Entry{At: time.Now(), Kind: routing.KindFirst, Model: "m", AccountID: 7,
		Candidates: []routing.Candidate{{AccountID: 7, Reason: routing.Sticky}, {AccountID: 8, Reason: routing.Busy}}})
	w.Close() // written
	var got pendingUsageView
	e.mustCall(http.MethodGet, "/api/v1/admin/usage/"+id, nil, http.StatusOK, &got)
	if got.Settled || got.RequestID != id || len(got.Attempts) != 0 || len(got.Routing) != 1 ||
		got.Routing[0].AccountID != 7 || len(got.Routing[0].Candidates) != 2 || got.Routing[0].Candidates[0].Reason != routing.Sticky {
		t.Errorf("pending = %+v", got)
	}

	tests := []struct{ name, id string }{
		{"unknown", "req_route_unknown"},
		{"overlong", strings.Repeat("r", maxRequestIDLen+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodGet, "/api/v1/admin/usage/"+tt.id, nil, http.StatusNotFound, "not_found_error",
				"no usage record for request")
		})
	}

	user, group := e.createUser("noroute"), e.createGroup("noroute", "openai")
	if _, err := e.st.WriteUsage(t.Context(), store.UsageWrite{RequestID: "req_route_none", UserID: user, APIKeyID: 1,
		GroupID: group, Path: "/v1/responses", Model: "m", Status: 200, RateMicros: 1_000_000,
		Attempts: []store.AttemptWrite{{Status: 200}}}); err != nil {
		t.Fatal(err)
	}
	_, body := e.call(http.MethodGet, "/api/v1/admin/usage/req_route_none", nil)
	for _, want := range []string{`"routing":[]`, `"candidates":[]`, `"admission":null`, `"settled":true`,
		`"breaker_open":false`, `"hedge_lost":false`, `"retried_same_account":false`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("record without routing = %s, want %s", body, want)
		}
	}
}
