package yaegi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// Hedged first token (plugin hedge.go) under Yaegi against the real controlsvc: two
// attempts raced in goroutines without select, the hedge admitted on the same grant, the
// loser cancelled, both slots released by the report.
func TestHedgedFirstTokenUnderYaegi(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t,
		accountSpec{name: "slow", priority: 1, script: &fakeupstream.Script{DelayMS: 5000, Text: "from the slow account"}},
		accountSpec{name: "quick", priority: 2, script: &fakeupstream.Script{Text: "from the quick account"}},
	)
	s.admin.do(t, http.MethodPatch, "/groups/"+itoa(tn.groupID), map[string]any{"hedge_after_ms": 200}, http.StatusOK, nil)
	time.Sleep(2500 * time.Millisecond) // the key cache (2 s) picks the group change up

	began := time.Now()
	rec := serve(t, s.handler, "/v1/responses", bearer(tn.key), `{"model":"gpt-4o","input":"hedge","stream":true}`)
	took := time.Since(began)
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "from the quick account") || strings.Contains(body, "slow account") ||
		strings.Count(body, "event: response.created") != 1 {
		t.Fatalf("got %d %s, want one stream from the quick account", rec.Code, body)
	}
	if took > 3*time.Second {
		t.Errorf("answered after %s: the slow account was waited for", took)
	}
	rows := s.waitUsage(t, tn.keyID, 1)
	if r := rows[0]; r.Status != 200 || r.AccountID != tn.accounts[1].id || r.Attempts != 2 {
		t.Errorf("usage row %+v, want status 200 on the quick account after 2 attempts", r)
	}
	s.waitIdle(t, tn)
}
