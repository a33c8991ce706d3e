package yaegi

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// micros reads a USD amount of the admin API as integer micro-dollars.
func micros(t *testing.T, v json.Number) int64 {
	t.Helper()
	f, err := v.Float64()
	if err != nil {
		t.Fatalf("amount %q: %v", v, err)
	}
	return int64(math.Round(f * 1e6))
}

type userMoney struct {
	BalanceUSD  json.Number `json:"balance_usd"`
	ReservedUSD json.Number `json:"reserved_usd"`
}

func (s *stack) userMoney(t *testing.T, userID int64) (balance, reserved int64) {
	t.Helper()
	var u userMoney
	s.admin.do(t, http.MethodGet, "/users/"+itoa(userID), nil, http.StatusOK, &u)
	return micros(t, u.BalanceUSD), micros(t, u.ReservedUSD)
}

// The interpreted plugin sends the estimate's inputs with its admission: while the request
// runs, its user has exactly the estimate of docs/billing.md reserved (gpt-4o-mini: input
// ≤ body/2 tokens at 0.15 USD/M, 1000 output tokens at 0.60 USD/M); when it is done, the
// balance has dropped by the record's cost and nothing stays held.
func TestReservationFromPluginEstimate(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t, accountSpec{name: "slow", priority: 1,
		script: &fakeupstream.Script{DelayMS: 1500, Usage: &fakeupstream.Usage{InputTokens: 40, OutputTokens: 10}}})
	balanceBefore, _ := s.userMoney(t, tn.userID)
	body := `{"model":"gpt-4o-mini","input":"` + strings.Repeat("x", 1000) + `","max_output_tokens":1000}`
	inputTokens := int64(len(body)+1) / 2
	// bucket costs rounded half up to a micro-dollar, as usage.CostBreakdown does
	want := (inputTokens*150_000+500_000)/1_000_000 + (1000*600_000+500_000)/1_000_000

	done := make(chan int, 1)
	go func() { done <- serve(t, s.handler, "/v1/responses", bearer(tn.key), body).Code }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, reserved := s.userMoney(t, tn.userID); reserved != 0 {
			if reserved != want {
				t.Errorf("reserved %d micros while the request runs, want %d", reserved, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing reserved while the request ran")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := <-done; code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	rows := s.waitUsage(t, tn.keyID, 1)
	var rec struct {
		CostUSD json.Number `json:"cost_usd"`
	}
	s.admin.do(t, http.MethodGet, "/usage/"+rows[0].RequestID, nil, http.StatusOK, &rec)
	cost := micros(t, rec.CostUSD)
	if cost == 0 {
		t.Fatal("the request cost nothing")
	}
	balance, reserved := s.userMoney(t, tn.userID)
	if balance != balanceBefore-cost || reserved != 0 {
		t.Errorf("balance %d reserved %d, want %d and 0", balance, reserved, balanceBefore-cost)
	}
	s.waitIdle(t, tn)
}

// The latencies of a failed-over request reach the ledger: admission and upstream time of
// the request, every attempt's latency and the answering attempt's time to first output.
func TestReportLatenciesReachTheLedger(t *testing.T) {
	s := getStack(t)
	const delayMs = 200
	tn := s.seed(t,
		accountSpec{name: "broken", priority: 1, script: &fakeupstream.Script{Status: 500}},
		accountSpec{name: "slow", priority: 2, script: &fakeupstream.Script{DelayMS: delayMs}})
	if rec := serve(t, s.handler, "/v1/responses", bearer(tn.key), `{"model":"gpt-4o-mini","input":"hi"}`); rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	rows := s.waitUsage(t, tn.keyID, 1)
	var rec struct {
		AdmissionMs  int64 `json:"admission_ms"`
		UpstreamMs   int64 `json:"upstream_ms"`
		FirstTokenMs int64 `json:"first_token_ms"`
		DurationMs   int64 `json:"duration_ms"`
		Attempts     []struct {
			Status       int   `json:"status"`
			LatencyMs    int64 `json:"latency_ms"`
			FirstTokenMs int64 `json:"first_token_ms"`
		} `json:"attempts"`
	}
	s.admin.do(t, http.MethodGet, "/usage/"+rows[0].RequestID, nil, http.StatusOK, &rec)
	if rec.UpstreamMs < delayMs || rec.AdmissionMs+rec.UpstreamMs > rec.DurationMs+2 {
		t.Errorf("admission_ms %d upstream_ms %d duration_ms %d", rec.AdmissionMs, rec.UpstreamMs, rec.DurationMs)
	}
	// The 500 is retried once on its account (plugin retry.go), then the slow one answers.
	if len(rec.Attempts) != 3 || rec.Attempts[0].Status != 500 || rec.Attempts[1].Status != 500 || rec.Attempts[2].Status != 200 {
		t.Fatalf("attempts = %+v", rec.Attempts)
	}
	last := rec.Attempts[2]
	if last.LatencyMs < delayMs || last.FirstTokenMs < last.LatencyMs || rec.Attempts[0].FirstTokenMs != 0 {
		t.Errorf("attempts = %+v", rec.Attempts)
	}
	s.waitIdle(t, tn)
}

// A billing refusal passes through the interpreted plugin as controlsvc wrote it.
func TestBillingRefusalThroughPlugin(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t, accountSpec{name: "a", priority: 1})
	s.admin.do(t, http.MethodPatch, "/api-keys/"+itoa(tn.keyID), map[string]any{"quota_usd": 0.000001}, http.StatusOK, nil)
	deadline := time.Now().Add(5 * time.Second) // the key cache holds the old key up to 2 s
	for {
		rec := serve(t, s.handler, "/v1/responses", bearer(tn.key), `{"model":"gpt-4o-mini","input":"hi"}`)
		if rec.Code == http.StatusTooManyRequests {
			if e := decodeError(t, rec); e.Error.Type != "insufficient_quota" || !strings.HasPrefix(e.Error.Message, "API key quota exhausted: $0.00 left; this request may cost up to ") {
				t.Errorf("error = %+v", e)
			}
			break
		}
		if rec.Code != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.waitIdle(t, tn)
}
