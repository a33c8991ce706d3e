package gateway

import (
	"fmt"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
)

// TestReportBatchRoundTrips counts the Redis round trips of one report batch: the reads
// before the ledger write (slot release, answers for the breakers, the routing
// explanations, the holds) go out in one pipeline, the writes after it (hold settlement,
// breaker successes, dropping the explanations) in another. The round trips do not grow
// with the batch (docs/design.md, "The hot path: one request, hop by hop").
func TestReportBatchRoundTrips(t *testing.T) {
	for _, n := range []int{1, 8} {
		t.Run(fmt.Sprintf("%d reports", n), func(t *testing.T) {
			e := newEnv(t)
			f := e.seedFixture(t, 16, "openai")
			account := e.seedAccount(t, f.group, accountSeed{concurrency: 16})
			warm := e.mustGrant(t, admission.Request{RequestID: "req_warm", APIKey: f.key, Model: "gpt-4o", InputBytes: 400})
			wantAccepted(t, e.sendReports(t, reportFor(warm, 200, "responses", `{"input_tokens":10,"output_tokens":5}`)), 1)
			reps := make([]report, 0, n)
			for i := 0; i < n; i++ {
				g := e.mustGrant(t, admission.Request{RequestID: fmt.Sprintf("req_%d", i), APIKey: f.key, Model: "gpt-4o", InputBytes: 400})
				reps = append(reps, reportFor(g, 200, "responses", `{"input_tokens":10,"output_tokens":5}`))
			}
			c := &rtCounter{}
			e.rdb.AddHook(c)
			c.set(true)
			wantAccepted(t, e.sendReports(t, reps...), n)
			trips := c.set(false)
			t.Logf("round trips: %q", trips)
			if len(trips) > 2 {
				t.Errorf("a batch of %d reports made %d Redis round trips %q, want at most 2", n, len(trips), trips)
			}
			if got := e.count(t, "account", account); got != 0 {
				t.Errorf("account slots after the reports = %d, want 0", got)
			}
			if got := e.count(t, "user", f.user); got != 0 {
				t.Errorf("user slots after the reports = %d, want 0", got)
			}
			if got := e.queryInt(t, `SELECT count(*) FROM usage_records WHERE user_id = $1`, f.user); got != int64(n)+1 {
				t.Errorf("usage records = %d, want %d", got, n+1)
			}
		})
	}
}
