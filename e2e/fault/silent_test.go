package fault

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/gatewaytest"
)

// Silent upstreams are bounded by default (docs/design.md, "Timeouts"): an account that
// sends no byte at all is failed over within the DEFAULT first-token timeout for a stream
// (60 s) and the DEFAULT response-header timeout for a non-streaming request (300 s),
// whatever the transport's larger backstop (600 s). The calm stack sets no plugin deadline
// (internal/stack pluginEnv passes only drain, write-stall and request timeouts), so these
// are the shipped defaults. Parallel, so that the long waits overlap the rest of the
// package.
func TestSilentUpstreamFailsOverAtTheDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		body       string
		bound      time.Duration // the default that must end the silent attempt
		wantClass  string
		silentMs   int // the fake's delay before headers: longer than the bound
		wantStream bool
	}{
		{"stream", `{"model":"gpt-4o-mini","input":"hello silent stream %d","stream":true}`, 60 * time.Second,
			"first_token_timeout", 100_000, true},
		{"non-stream", `{"model":"gpt-4o-mini","input":"hello silent %d"}`, 300 * time.Second,
			"response_header_timeout", 400_000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, calmStack)
			c.HTTP.Timeout = tt.bound + 2*time.Minute
			tn := c.NewTenant(gatewaytest.TenantSpec{Name: "silent-" + tt.name, UserConcurrency: 2,
				BalanceMicros: initialMicros, AccountConcurrency: []int{2, 2}})
			silent, spare := tn.AccountIDs[0], tn.AccountIDs[1]
			// The silent account is tried first.
			c.MustAdmin("PATCH", fmt.Sprintf("/accounts/%d", silent), obj{"priority": 1})
			c.MustAdmin("PATCH", fmt.Sprintf("/accounts/%d", spare), obj{"priority": 2})
			c.ProgramUpstream(tn.Credentials[0], obj{"delay_ms": tt.silentMs})
			c.ProgramUpstream(tn.Credentials[1], obj{"text": "from the spare"})

			ctx, cancel := context.WithTimeout(context.Background(), c.HTTP.Timeout)
			defer cancel()
			a, resp := sendResponses(ctx, c, tn.Key, fmt.Sprintf(tt.body, bodySeq.Add(1)), nil)
			if resp == nil {
				t.Fatalf("request failed: %s", a.err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(a.sent)
			if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "spare") {
				t.Fatalf("got %d (%v) %s, want 200 from the spare", resp.StatusCode, err, b)
			}
			if sse := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"); sse != tt.wantStream {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			// Failed over at the bound: not before it, and well before the silent account's
			// delay or the transport's 600 s backstop.
			if took < tt.bound || took > tt.bound+20*time.Second {
				t.Errorf("answered after %s, want just after the default bound of %s", took, tt.bound)
			}

			recs := c.DrainedUsage(tn.KeyID, 1, 20*time.Second)
			if len(recs) != 1 || recs[0].Status != 200 {
				t.Fatalf("usage records = %+v, want one 200", recs)
			}
			detail := c.MustAdmin("GET", "/usage/"+recs[0].RequestID, nil)
			if gatewaytest.Integer(t, detail["account_id"]) != spare {
				t.Errorf("record account = %v, want the spare %d", detail["account_id"], spare)
			}
			attempts, _ := detail["attempts"].([]any)
			if len(attempts) != 2 {
				t.Fatalf("attempts = %v, want 2", attempts)
			}
			first, _ := attempts[0].(obj)
			if gatewaytest.Integer(t, first["account_id"]) != silent || first["error_class"] != tt.wantClass {
				t.Errorf("first attempt = %v, want account %d with %s", first, silent, tt.wantClass)
			}
			// Only excluded for the request, never paused: the silent account is schedulable.
			acct := c.MustAdmin("GET", fmt.Sprintf("/accounts/%d", silent), nil)
			if st, _ := acct["state"].(obj); st != nil && st["paused_until"] != nil {
				t.Errorf("the silent account was paused: state %v", st)
			}
			c.WaitNoSlots([]int64{tn.UserID}, tn.AccountIDs, 10*time.Second)
		})
	}
}
