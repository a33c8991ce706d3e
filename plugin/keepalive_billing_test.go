package plugin

import (
	"testing"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Keep-alives send a 200 while the admission waits; when every attempt then fails, the client
// gets an error event and no answer. The report must say so, since controlsvc bills a 2xx
// report without usage by estimate unless it says usage_source "upstream" with an error
// class (gateway/reports_estimate.go, billedSource).
func TestKeepAlivesThenFailureReportNoAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		path     string
		upstream upstreamReply
	}{
		{"chat: failover exhausted", pathChat, upstreamReply{status: 429, body: `{"error":{"message":"slow down"}}`}},
		{"responses: upstream error before any output", pathResponses,
			upstreamReply{status: 400, body: `{"error":{"type":"invalid_request_error","message":"bad"}}`}},
		{"chat: upstream answers a plain body", pathChat, okReply("not a stream")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("up-1", tt.upstream)
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
			stub.admitHook = slowAdmission(200 * time.Millisecond)
			h := newTestHandler(t, stub, func(c *Config) {
				pingConfig(c)
				c.MaxAccountSwitches = 0
			})
			if rec := do(h, tt.path, `{"model":"m","stream":true}`, nil); rec.Code != 200 {
				t.Fatalf("status %d", rec.Code)
			}
			r := stub.waitReport()
			if r.Status != 200 || r.ErrorClass == "" || r.UsageSource != usageSourceUpstream || !jsonsse.IsNull(r.Usage) {
				t.Errorf("report status %d, error class %q, usage_source %q, usage %s; want 200, an error class, upstream, none",
					r.Status, r.ErrorClass, r.UsageSource, r.Usage)
			}
		})
	}
}
