package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// Why each attempt ended (breaker_open, hedge_lost, retried_same_account) and the record's
// routing explanation are stored with the batch that inserts the record, once: a replay
// changes nothing, and a record without an explanation stores NULL.
func TestWriteUsageStoresAttemptReasonsAndRouting(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedLedger(t, st, 1_000_000)
	const routing = `[{"kind":"first","account_id":1,"candidates":[{"account_id":1,"reason":"chosen"}],"candidates_cut":0}]`

	with := f.failoverWrite("req_reasons")
	with.Routing = []byte(routing)
	with.Attempts = []AttemptWrite{
		{AccountID: f.acctA, Status: 500, ErrorClass: "upstream_status", RetriedSameAccount: true},
		{AccountID: f.acctA, Status: 500, ErrorClass: "upstream_status", BreakerOpen: true},
		{AccountID: f.acctB, Status: 0, ErrorClass: "canceled", HedgeLost: true},
		{AccountID: f.acctB, Status: 200},
	}
	without := f.failoverWrite("req_no_reasons")
	if _, _, err := st.WriteUsageBatch(ctx, []UsageWrite{with, without}); err != nil {
		t.Fatal(err)
	}
	replay := with
	replay.Routing = []byte(`[]`)
	replay.Attempts = []AttemptWrite{{AccountID: f.acctA, Status: 500}, {AccountID: f.acctA}, {AccountID: f.acctB}, {AccountID: f.acctB}}
	if ins, err := st.WriteUsage(ctx, replay); err != nil || ins {
		t.Fatalf("replay = %v, %v; want not inserted", ins, err)
	}

	tests := []struct {
		name      string
		requestID string
		want      [][3]bool // breaker_open, hedge_lost, retried_same_account per attempt
		routing   string    // "" = NULL
	}{
		{"with reasons", "req_reasons", [][3]bool{{false, false, true}, {true, false, false}, {false, true, false}, {false, false, false}}, routing},
		{"without", "req_no_reasons", [][3]bool{{false, false, false}, {false, false, false}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			atts, err := st.UsageAttempts(ctx, tt.requestID)
			if err != nil {
				t.Fatal(err)
			}
			if len(atts) != len(tt.want) {
				t.Fatalf("attempts = %+v, want %d", atts, len(tt.want))
			}
			for i, a := range atts {
				if got := [3]bool{a.BreakerOpen, a.HedgeLost, a.RetriedSameAccount}; got != tt.want[i] {
					t.Errorf("attempt %d (breaker_open, hedge_lost, retried_same_account) = %v, want %v", i+1, got, tt.want[i])
				}
			}
			raw, err := st.UsageRouting(ctx, tt.requestID)
			if err != nil {
				t.Fatal(err)
			}
			if tt.routing == "" {
				if raw != nil {
					t.Errorf("routing = %s, want NULL", raw)
				}
				return
			}
			var got, want any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("routing %s: %v", raw, err)
			}
			_ = json.Unmarshal([]byte(tt.routing), &want)
			if b1, b2 := mustJSON(t, got), mustJSON(t, want); b1 != b2 {
				t.Errorf("routing = %s, want %s", b1, b2)
			}
		})
	}
	if _, err := st.UsageRouting(ctx, "req_absent"); !errors.Is(err, ErrUsageNotFound) {
		t.Errorf("routing of an unknown request: %v, want ErrUsageNotFound", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// SetBreakerOpen flags exactly the attempts named, after their record was stored.
func TestSetBreakerOpen(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedLedger(t, st, 1_000_000)
	for _, id := range []string{"req_brk_1", "req_brk_2"} {
		if _, err := st.WriteUsage(ctx, f.failoverWrite(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetBreakerOpen(ctx, []AttemptRef{{RequestID: "req_brk_1", Attempt: 2}, {RequestID: "req_absent", Attempt: 1}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		requestID string
		want      []bool
	}{
		{"req_brk_1", []bool{false, true}},
		{"req_brk_2", []bool{false, false}},
	}
	for _, tt := range tests {
		atts, err := st.UsageAttempts(ctx, tt.requestID)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]bool, len(atts))
		for i, a := range atts {
			got[i] = a.BreakerOpen
		}
		if len(got) != len(tt.want) || got[0] != tt.want[0] || got[1] != tt.want[1] {
			t.Errorf("%s breaker_open = %v, want %v", tt.requestID, got, tt.want)
		}
	}
}
