package plugin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// The admit request carries the inputs of controlsvc's cost estimate (docs/billing.md).
func TestAdmitCarriesEstimateInputs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path string
		body string
		want int64
	}{
		{"responses max_output_tokens", "/v1/responses", `{"model":"m","input":"hi","max_output_tokens":300}`, 300},
		{"responses without maximum", "/v1/responses", `{"model":"m","input":"hi"}`, 0},
		{"responses ignores max_tokens", "/v1/responses", `{"model":"m","input":"hi","max_tokens":300}`, 0},
		{"chat max_tokens", "/v1/chat/completions", `{"model":"m","messages":[],"max_tokens":50}`, 50},
		{"chat max_completion_tokens", "/v1/chat/completions", `{"model":"m","messages":[],"max_completion_tokens":70}`, 70},
		{"chat both: the larger", "/v1/chat/completions", `{"model":"m","messages":[],"max_completion_tokens":70,"max_tokens":90}`, 90},
		{"messages max_tokens", "/v1/messages", `{"model":"m","messages":[],"max_tokens":9}`, 9},
		{"messages ignores max_output_tokens", "/v1/messages", `{"model":"m","messages":[],"max_output_tokens":9}`, 0},
		{"exponent", "/v1/responses", `{"model":"m","max_output_tokens":1e3}`, 1000},
		{"negative", "/v1/responses", `{"model":"m","max_output_tokens":-5}`, 0},
		{"string", "/v1/responses", `{"model":"m","max_output_tokens":"100"}`, 0},
		{"null", "/v1/messages", `{"model":"m","max_tokens":null}`, 0},
		{"huge is capped", "/v1/responses", `{"model":"m","max_output_tokens":1e300}`, jsonsse.MaxTokenCount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("up-1", okReply("ok"))
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
			rec := do(newTestPlugin(t, stub, nil), tt.path, tt.body, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			calls := stub.admitCalls()
			if len(calls) != 1 {
				t.Fatalf("%d admit calls", len(calls))
			}
			if calls[0].InputBytes != int64(len(tt.body)) || calls[0].MaxOutputTokens != tt.want {
				t.Fatalf("input_bytes %d max_output_tokens %d, want %d and %d",
					calls[0].InputBytes, calls[0].MaxOutputTokens, len(tt.body), tt.want)
			}
		})
	}
}

// A re-admission sends the estimate inputs again (controlsvc reserves only once per request).
func TestReadmissionCarriesEstimateInputs(t *testing.T) {
	t.Parallel()
	fake, fakeURL := newFakeUpstream(t)
	fake.SetCredentialScript("acct-1", fakeupstream.Script{Status: 500})
	stub := newContractStub(t,
		stubAccount{id: 1, baseURL: fakeURL, apiKey: "acct-1"},
		stubAccount{id: 2, baseURL: fakeURL, apiKey: "acct-2"},
	)
	body := `{"model":"m","input":"hi","max_output_tokens":42}`
	rec := do(newTestPlugin(t, stub, nil), "/v1/responses", body, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	calls := stub.admitCalls()
	if len(calls) != 2 || calls[1].GrantID == "" {
		t.Fatalf("admit calls = %+v", calls)
	}
	for i, c := range calls {
		if c.InputBytes != int64(len(body)) || c.MaxOutputTokens != 42 {
			t.Errorf("call %d: input_bytes %d max_output_tokens %d", i, c.InputBytes, c.MaxOutputTokens)
		}
	}
}

// The report splits the request's time into admission (waits and re-admissions included)
// and upstream time, and gives every attempt its latency and the answering one its time to
// first output.
func TestReportLatencies(t *testing.T) {
	t.Parallel()
	const (
		firstAdmit = 120 * time.Millisecond
		readmit    = 150 * time.Millisecond
		upDelay    = 100 // ms before the second account's response headers
	)
	fake, fakeURL := newFakeUpstream(t)
	fake.SetCredentialScript("acct-1", fakeupstream.Script{Status: 500})
	fake.SetCredentialScript("acct-2", fakeupstream.Script{DelayMS: upDelay})
	stub := newContractStub(t,
		stubAccount{id: 1, baseURL: fakeURL, apiKey: "acct-1"},
		stubAccount{id: 2, baseURL: fakeURL, apiKey: "acct-2"},
	)
	stub.admitHook = func(w http.ResponseWriter, ar admitRequest) bool {
		if ar.GrantID == "" {
			time.Sleep(firstAdmit) // a wait in controlsvc's queues
		} else {
			time.Sleep(readmit)
		}
		return false // then grant as usual
	}
	rec := do(newTestPlugin(t, stub, noSameAccountRetry), "/v1/responses", `{"model":"m","input":"hi"}`, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	r := stub.waitReport()
	ms := func(d time.Duration) int64 { return int64(d / time.Millisecond) }
	if r.AdmissionMs < ms(firstAdmit+readmit) {
		t.Errorf("admission_ms %d, want at least %d", r.AdmissionMs, ms(firstAdmit+readmit))
	}
	if r.UpstreamMs < upDelay {
		t.Errorf("upstream_ms %d, want at least %d", r.UpstreamMs, upDelay)
	}
	// Re-admission time counts as admission only: the two never overlap.
	if r.AdmissionMs+r.UpstreamMs > r.DurationMs+2 {
		t.Errorf("admission_ms %d + upstream_ms %d > duration_ms %d", r.AdmissionMs, r.UpstreamMs, r.DurationMs)
	}
	if len(r.Attempts) != 2 {
		t.Fatalf("attempts = %+v", r.Attempts)
	}
	if a := r.Attempts[0]; a.Status != 500 || a.FirstTokenMs != 0 || len(a.Usage) != 0 {
		t.Errorf("failed attempt = %+v usage %s", a, a.Usage)
	}
	a := r.Attempts[1]
	if a.DurationMs < upDelay || a.FirstTokenMs < a.DurationMs || a.FirstTokenMs > r.FirstTokenMs {
		t.Errorf("answering attempt latency %d first token %d (request first token %d)", a.DurationMs, a.FirstTokenMs, r.FirstTokenMs)
	}
}

// A stream that announced its input (Anthropic's message_start) and then missed its
// first-token deadline fails over; its attempt keeps the usage it announced, the report's
// usage is the answering attempt's.
func TestFailedOverStreamKeepsAttemptUsage(t *testing.T) {
	t.Parallel()
	fake, fakeURL := newFakeUpstream(t)
	// message_start, content_block_start and ping are held before the commit point; then
	// the stream stalls.
	fake.SetCredentialScript("acct-1", fakeupstream.Script{
		StallAfterEvents: fakeupstream.Events(3),
		Usage:            &fakeupstream.Usage{InputTokens: 40, OutputTokens: 1},
	})
	// A few milliseconds before the headers, so that the answering attempt's first_token_ms
	// is never 0 (omitted) on a fast machine.
	fake.SetCredentialScript("acct-2", fakeupstream.Script{DelayMS: 5, Usage: &fakeupstream.Usage{InputTokens: 25, OutputTokens: 6}})
	stub := newContractStub(t,
		stubAccount{id: 1, baseURL: fakeURL, apiKey: "acct-1", upstreamModel: "claude-mapped"},
		stubAccount{id: 2, baseURL: fakeURL, apiKey: "acct-2"},
	)
	p := newTestPlugin(t, stub, func(c *Config) { c.FirstTokenTimeout = "300ms" })
	rec := do(p, "/v1/messages", `{"model":"claude","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "message_stop") {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	r := stub.waitReport()
	if len(r.Attempts) != 2 || r.Attempts[0].ErrorClass != classFirstTokenTimeout {
		t.Fatalf("attempts = %+v", r.Attempts)
	}
	// Each attempt names the model its account was sent, mapped or as requested.
	if r.Attempts[0].UpstreamModel != "claude-mapped" || r.Attempts[1].UpstreamModel != "claude" {
		t.Errorf("attempt models %q, %q", r.Attempts[0].UpstreamModel, r.Attempts[1].UpstreamModel)
	}
	in, _, _ := tokens(t, usageAnthropic, r.Attempts[0].Usage)
	if in != 40 {
		t.Errorf("failed attempt usage %s, want its announced 40 input tokens", r.Attempts[0].Usage)
	}
	if len(r.Attempts[1].Usage) != 0 {
		t.Errorf("answering attempt carries its own usage %s; it is the report's", r.Attempts[1].Usage)
	}
	in, out, _ := tokens(t, usageAnthropic, r.Usage)
	if in != 25 || out != 6 {
		t.Errorf("report usage %s", r.Usage)
	}
	// The wire form: optional fields are omitted when empty.
	raw, err := jsonsse.Encode(r.Attempts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["usage"]; ok {
		t.Errorf("answering attempt on the wire: %s", raw)
	}
	if _, ok := m["first_token_ms"]; !ok {
		t.Errorf("answering attempt without first_token_ms: %s", raw)
	}
}
