package plugin

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestControlUnavailableAnswers503(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name string
		// hook answers admit calls; nil with unreachable=true points the plugin at a closed port
		hook        func(w http.ResponseWriter, ar admitRequest) bool
		unreachable bool
	}{
		{name: "unreachable", unreachable: true},
		{name: "slow", hook: func(w http.ResponseWriter, ar admitRequest) bool {
			time.Sleep(1500 * time.Millisecond)
			return false
		}},
		{name: "garbled 200", hook: func(w http.ResponseWriter, ar admitRequest) bool {
			io.WriteString(w, `{"grant_id":`)
			return true
		}},
		{name: "200 without grant id", hook: func(w http.ResponseWriter, ar admitRequest) bool {
			io.WriteString(w, `{"account_id":3,"base_url":"http://x"}`)
			return true
		}},
		{name: "500 without reject header", hook: func(w http.ResponseWriter, ar admitRequest) bool {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":{"type":"api_error","message":"pq: secret internals"}}`)
			return true
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stub := newContractStub(t)
			stub.admitHook = tt.hook
			p := newTestPlugin(t, stub, func(c *Config) {
				c.AdmissionTimeout = "300ms"
				c.MaxWait = "0s" // the bound is admissionTimeout + maxWait
				if tt.unreachable {
					c.ControlURL = closedURL
				}
			})
			if tt.unreachable {
				t.Cleanup(func() { closeControl(closedURL, testSecret) })
			}
			began := time.Now()
			rec := do(p, "/v1/responses", `{"model":"m"}`, nil)
			elapsed := time.Since(began)
			_, typ, msg := errorOf(t, rec.Body.Bytes())
			if rec.Code != 503 || typ != "api_error" || msg != "Service temporarily unavailable" {
				t.Fatalf("got %d %q %q", rec.Code, typ, msg)
			}
			if elapsed > time.Second {
				t.Fatalf("answered after %v; the admission timeout is 300ms", elapsed)
			}
		})
	}
}

func TestRejectionCopiedVerbatim(t *testing.T) {
	t.Parallel()
	const body = `{"error":{"type":"rate_limit_error","message":"Concurrency limit exceeded for user, please retry later"}}`
	stub := newContractStub(t)
	stub.admitHook = func(w http.ResponseWriter, ar admitRequest) bool {
		w.Header().Set(headerReject, "user_concurrency")
		w.Header().Set("Retry-After", "2")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, body)
		return true
	}
	p := newTestPlugin(t, stub, nil)
	rec := do(p, "/v1/chat/completions", `{"model":"m","stream":true}`, nil)
	if rec.Code != 429 || rec.Body.String() != body || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("got %d %q Retry-After=%q", rec.Code, rec.Body.String(), rec.Header().Get("Retry-After"))
	}
	if rec.Header().Get(headerReject) != "" {
		t.Fatal("the reject reason header is internal")
	}
	calls := stub.admitCalls()
	if len(calls) != 1 {
		t.Fatalf("%d admit calls, want 1", len(calls))
	}
	c := calls[0]
	if c.GrantID != "" || c.Path != "/v1/chat/completions" || c.Model != "m" || !c.Stream || c.APIKey != testClientKey ||
		c.RequestID == "" || c.Exclude == nil || len(c.Exclude) != 0 || c.Failed != nil {
		t.Fatalf("first admit request = %+v", c)
	}
	if c.RequestID != rec.Header().Get(headerRequestID) {
		t.Fatalf("request id %q not returned to the client (%q)", c.RequestID, rec.Header().Get(headerRequestID))
	}
}

func TestAdmitSendsSecret(t *testing.T) {
	t.Parallel()
	stub := newContractStub(t)
	cfg := CreateConfig()
	cfg.ControlURL = stub.URL()
	cfg.PluginSecret = "wrong"
	h, err := New(context.Background(), http.NotFoundHandler(), cfg, "mw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeControl(stub.URL(), "wrong") })
	// The stub answers 401 without X-Poolgate-Reject to a wrong secret: controlsvc is
	// unusable for this plugin, which the client sees as 503.
	rec := do(h, "/v1/responses", `{"model":"m"}`, nil)
	if rec.Code != 503 {
		t.Fatalf("status %d with a wrong secret, want 503", rec.Code)
	}
	if n := len(stub.admitCalls()); n != 0 {
		t.Fatalf("stub accepted %d admit calls with a wrong secret", n)
	}
}
