package gateway

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// TestReportBatchAfterScriptFlush: a report batch right after Redis lost its scripts (a
// restart, SCRIPT FLUSH) finds its script calls refused with NOSCRIPT inside its
// pipelines. Only those calls are sent again, so the slots are released, the hold settled
// and the balance charged once: a settlement run twice would find no hold and mark the
// wallet copy for reload.
func TestReportBatchAfterScriptFlush(t *testing.T) {
	cases := []struct {
		name string
		// keep is reloaded after the flush: its call runs in the pipeline and must not run
		// again (a settlement is not idempotent on the wallet copy).
		keep string
		kept int // EVALSHA calls that the kept script answers
	}{
		{name: "every script lost"},
		{name: "settle script kept", keep: "../holds/settle.lua", kept: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			f := e.seedBillFixture(t, "openai", 10_000_000)
			warm := e.mustGrant(t, admission.Request{RequestID: "req_warm", APIKey: f.key, Model: "gpt-4o", InputBytes: 400})
			wantAccepted(t, e.sendReports(t, reportFor(warm, 200, "responses", `{"input_tokens":10,"output_tokens":5}`)), 1)
			g := e.mustGrant(t, admission.Request{RequestID: "req_flushed", APIKey: f.key, Model: "gpt-4o", InputBytes: 400})
			if _, ok := e.hold(t, f.user, "req_flushed"); !ok {
				t.Fatal("the grant holds nothing")
			}
			before := e.balance(t, f.user)
			if err := e.rdb.ScriptFlush(t.Context()).Err(); err != nil {
				t.Fatalf("SCRIPT FLUSH: %v", err)
			}
			if tc.keep != "" {
				src, err := os.ReadFile(tc.keep)
				if err != nil {
					t.Fatalf("reading %s: %v", tc.keep, err)
				}
				if err := e.rdb.ScriptLoad(t.Context(), string(src)).Err(); err != nil {
					t.Fatalf("SCRIPT LOAD %s: %v", tc.keep, err)
				}
			}

			c := &rtCounter{}
			e.rdb.AddHook(c)
			c.set(true)
			wantAccepted(t, e.sendReports(t, reportFor(g, 200, "responses", `{"input_tokens":1000,"output_tokens":500}`)), 1)
			trips := c.set(false)
			t.Logf("round trips: %q", trips)

			// The two pipelines, and besides them only the refused script calls, re-sent
			// as EVAL, each once.
			pipelines, evalshas, evals := 0, 0, 0
			for _, trip := range trips {
				resent := true
				for _, cmd := range strings.Split(trip, "+") {
					switch cmd {
					case "eval":
						evals++
					case "evalsha":
						evalshas++
						resent = false
					default:
						resent = false
					}
				}
				if !resent {
					pipelines++
				}
			}
			if pipelines != 2 || evals != evalshas-tc.kept {
				t.Errorf("round trips %q: %d pipelines, %d EVALSHA (%d answered) re-sent as %d EVAL; want 2 pipelines and each refused call re-sent once",
					trips, pipelines, evalshas, tc.kept, evals)
			}
			if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, f.account); u != 0 || a != 0 {
				t.Errorf("slots after the report: user %d account %d, want 0 and 0", u, a)
			}
			if _, ok := e.hold(t, f.user, "req_flushed"); ok {
				t.Error("the hold is still there after its report")
			}
			if h := e.heldOf(t, f.user); h.Balance != 0 || h.Holds != 0 {
				t.Errorf("held %d in %d holds after the report, want nothing", h.Balance, h.Holds)
			}
			cost := e.queryInt(t, `SELECT cost_micros FROM usage_records WHERE request_id = 'req_flushed'`)
			if cost <= 0 {
				t.Fatalf("record cost = %d, want a charge", cost)
			}
			after := e.balance(t, f.user)
			if before-after != cost {
				t.Errorf("balance dropped by %d, the record costs %d: charged once", before-after, cost)
			}
			wallet := e.rdb.HMGet(t.Context(), "pg:{u:"+strconv.FormatInt(f.user, 10)+"}:bal", "ok", "bal").Val()
			if wallet[0] == nil {
				t.Error("the wallet copy is marked for reload: the settlement ran twice (or failed)")
			}
			if s, _ := wallet[1].(string); s != strconv.FormatInt(after, 10) {
				t.Errorf("wallet copy balance = %v, PostgreSQL's = %d: charged other than once", wallet[1], after)
			}
		})
	}
}
