package plugin

import (
	"strings"
	"testing"

	"github.com/poolgate/poolgate/fakeupstream"
)

// The bounds on silent upstreams are on by default (docs/design.md, "Timeouts").
func TestSilentUpstreamDefaults(t *testing.T) {
	c := CreateConfig()
	if c.FirstTokenTimeout != "60s" || c.ResponseHeaderTimeout != "300s" || c.SameAccountRetryMax != "3s" {
		t.Fatalf("defaults: firstTokenTimeout %q, responseHeaderTimeout %q, sameAccountRetryMax %q",
			c.FirstTokenTimeout, c.ResponseHeaderTimeout, c.SameAccountRetryMax)
	}
	// Each below the transport's backstop, which must never fire first.
	if c.UpstreamHeaderTimeout != "600s" {
		t.Fatalf("upstreamHeaderTimeout %q", c.UpstreamHeaderTimeout)
	}
}

// A non-streaming attempt without response headers within responseHeaderTimeout fails over
// with its own class; a stream is bounded by its first-token deadline instead.
func TestResponseHeaderTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		wantClass string // of the first attempt; "" = it answered
		wantAcct  int64
	}{
		{"non-stream fails over", `{"model":"gpt-4o","input":"hi"}`, classResponseHeaderTimeout, 2},
		{"a stream is not bounded by it", `{"model":"gpt-4o","input":"hi","stream":true}`, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake, fakeURL := newFakeUpstream(t)
			fake.SetCredentialScript("silent", fakeupstream.Script{DelayMS: 800})
			stub := newContractStub(t,
				stubAccount{id: 1, baseURL: fakeURL, apiKey: "silent"},
				stubAccount{id: 2, baseURL: fakeURL, apiKey: "spare"},
			)
			p := newTestPlugin(t, stub, func(c *Config) {
				c.ResponseHeaderTimeout = "300ms"
				c.FirstTokenTimeout = "0s"
			})
			rec := do(p, "/v1/responses", tt.body, nil)
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), fakeupstream.DefaultText) {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			r := stub.waitReport()
			if r.AccountID != tt.wantAcct || r.Status != 200 {
				t.Fatalf("report account %d status %d, want account %d", r.AccountID, r.Status, tt.wantAcct)
			}
			if tt.wantClass == "" {
				checkAttempts(t, r.Attempts, []wantAttempt{{1, 200, false}})
				return
			}
			if len(r.Attempts) != 2 || r.Attempts[0].ErrorClass != tt.wantClass || r.Attempts[0].Status != 0 {
				t.Fatalf("attempts = %+v, want the first with %s", r.Attempts, tt.wantClass)
			}
			calls := stub.admitCalls()
			if len(calls) != 2 || calls[1].Failed == nil || calls[1].Failed.ErrorClass != tt.wantClass {
				t.Fatalf("re-admission failed = %+v, want class %s", calls[len(calls)-1].Failed, tt.wantClass)
			}
		})
	}
}

// The grant's response_header_timeout_ms overrides the plugin's for non-streaming requests.
func TestResponseHeaderTimeoutOfTheGrant(t *testing.T) {
	ms := func(v int64) *int64 { return &v }
	p := &Poolgate{headers: 300e9}
	tests := []struct {
		name   string
		stream bool
		grant  *int64
		want   int64 // ms
	}{
		{"plugin default", false, nil, 300000},
		{"group override", false, ms(1500), 1500},
		{"group turns it off", false, ms(0), 0},
		{"streams use the first-token deadline", true, ms(1500), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := &exchange{p: p}
			x.info.stream = tt.stream
			if got := responseHeaderTimeout(x, &grant{ResponseHeaderTimeoutMs: tt.grant}).Milliseconds(); got != tt.want {
				t.Fatalf("responseHeaderTimeout = %d ms, want %d", got, tt.want)
			}
		})
	}
}
