package plugin

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// quotaRule answers like controlsvc with a rule {error_codes:[500], keywords:["quota"],
// match_mode:"all", response_code:503, custom_message:"Upstream quota exhausted"}.
func quotaRule(w http.ResponseWriter, ue upstreamErrorRequest) {
	w.Header().Set("Content-Type", "application/json")
	if ue.Status != 500 || !strings.Contains(strings.ToLower(ue.Body), "quota") {
		io.WriteString(w, `{"matched":false}`)
		return
	}
	io.WriteString(w, `{"matched":true,"status":503,"body":{"error":{"type":"upstream_error","message":"Upstream quota exhausted"}}}`)
}

func (s *contractStub) setUpstreamErrorHook(h func(http.ResponseWriter, upstreamErrorRequest)) {
	s.mu.Lock()
	s.upstreamErrorHook = h
	s.mu.Unlock()
}

func (s *contractStub) upstreamErrorCalls() []upstreamErrorRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]upstreamErrorRequest(nil), s.upstreamErrors...)
}

func TestPassthroughOnExhaustedFailover(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		lastBody   string
		hook       func(http.ResponseWriter, upstreamErrorRequest)
		wantStatus int
		wantBody   string
	}{
		{"rule matches the last body", `{"error":{"message":"QUOTA exceeded on account 2"}}`, quotaRule,
			503, `{"error":{"type":"upstream_error","message":"Upstream quota exhausted"}}`},
		{"no rule matches", `{"error":{"message":"boom"}}`, quotaRule,
			502, `{"error":{"type":"upstream_error","message":"Upstream service temporarily unavailable"}}`},
		{"controlsvc refuses the call", `{"error":{"message":"quota"}}`, func(w http.ResponseWriter, _ upstreamErrorRequest) {
			http.Error(w, "no", http.StatusInternalServerError)
		}, 502, `{"error":{"type":"upstream_error","message":"Upstream service temporarily unavailable"}}`},
		{"garbled reply", `{"error":{"message":"quota"}}`, func(w http.ResponseWriter, _ upstreamErrorRequest) {
			io.WriteString(w, `{"matched":true,"status":0}`)
		}, 502, `{"error":{"type":"upstream_error","message":"Upstream service temporarily unavailable"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			// Only the last attempt's body is looked at: the first one would not match.
			up.set("up-1", upstreamReply{status: 500, body: `{"error":{"message":"first account down"}}`})
			up.set("up-2", upstreamReply{status: 500, body: tt.lastBody})
			stub := newContractStub(t,
				stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"},
				stubAccount{id: 2, baseURL: up.srv.URL, apiKey: "up-2"},
			)
			stub.setUpstreamErrorHook(tt.hook)
			p := newTestPlugin(t, stub, noSameAccountRetry)

			rec := do(p, "/v1/responses", `{"model":"gpt-x"}`, nil)
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Fatalf("client got %d %s, want %d %s", rec.Code, rec.Body.String(), tt.wantStatus, tt.wantBody)
			}
			calls := stub.upstreamErrorCalls()
			want := upstreamErrorRequest{GroupID: 9, Platform: "openai", Path: "/v1/responses", Status: 500, Body: tt.lastBody}
			if len(calls) != 1 || calls[0] != want {
				t.Fatalf("upstream-error calls = %+v, want one %+v", calls, want)
			}
			r := stub.waitReport()
			if r.Status != tt.wantStatus || r.ErrorClass != classUpstreamStatus || len(r.Attempts) != 2 {
				t.Fatalf("report = %+v", r)
			}
		})
	}
}

func TestPassthroughAnthropicShapeAndRetryAfter(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 429, body: `{"type":"error","error":{"message":"limit"}}`, headers: map[string]string{"Retry-After": "7"}})
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	const body = `{"type":"error","error":{"type":"upstream_error","message":"limit"}}`
	stub.setUpstreamErrorHook(func(w http.ResponseWriter, ue upstreamErrorRequest) {
		io.WriteString(w, `{"matched":true,"status":429,"body":`+body+`}`)
	})
	p := newTestPlugin(t, stub, func(c *Config) { c.MaxAccountSwitches = 0 })
	rec := do(p, "/v1/messages", `{"model":"claude-x","max_tokens":5,"messages":[]}`, nil)
	if rec.Code != 429 || rec.Body.String() != body || rec.Header().Get("Retry-After") != "7" {
		t.Fatalf("client got %d %s (Retry-After %q)", rec.Code, rec.Body.String(), rec.Header().Get("Retry-After"))
	}
	if calls := stub.upstreamErrorCalls(); len(calls) != 1 || calls[0].Path != "/v1/messages" {
		t.Fatalf("upstream-error calls = %+v", calls)
	}
}

func TestPassthroughOnNonFailoverError(t *testing.T) {
	t.Parallel()
	long := `{"error":{"message":"` + strings.Repeat("x", 3*maxErrorHead) + `"}}`
	rewrite := func(w http.ResponseWriter, ue upstreamErrorRequest) {
		if !strings.Contains(ue.Body, "policy") {
			io.WriteString(w, `{"matched":false}`)
			return
		}
		io.WriteString(w, `{"matched":true,"status":400,"body":{"error":{"type":"upstream_error","message":"blocked by policy"}}}`)
	}
	tests := []struct {
		name       string
		reply      upstreamReply
		wantStatus int
		wantBody   string
		wantCalls  int
		wantHead   int // length of the body sent to controlsvc; 0 = the whole body
	}{
		{"rule rewrites a 400", upstreamReply{status: 400, body: `{"error":{"message":"content policy"}}`},
			400, `{"error":{"type":"upstream_error","message":"blocked by policy"}}`, 1, 0},
		{"no rule: relayed as is", upstreamReply{status: 404, body: `{"error":{"message":"no such model"}}`},
			404, `{"error":{"message":"no such model"}}`, 1, 0},
		{"no rule: a long body is relayed whole", upstreamReply{status: 422, body: long}, 422, long, 1, maxErrorHead},
		{"success: no call", okReply("fine"), 200, okReply("fine").body, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("up-1", tt.reply)
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"}, stubAccount{id: 2, baseURL: up.srv.URL, apiKey: "up-2"})
			stub.setUpstreamErrorHook(rewrite)
			p := newTestPlugin(t, stub, nil)

			rec := do(p, "/v1/responses", `{"model":"gpt-x"}`, nil)
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Fatalf("client got %d %.200s, want %d %.200s", rec.Code, rec.Body.String(), tt.wantStatus, tt.wantBody)
			}
			calls := stub.upstreamErrorCalls()
			if len(calls) != tt.wantCalls {
				t.Fatalf("%d upstream-error calls, want %d", len(calls), tt.wantCalls)
			}
			wantHead := tt.wantHead
			if wantHead == 0 {
				wantHead = len(tt.reply.body)
			}
			if tt.wantCalls > 0 && (len(calls[0].Body) != wantHead || calls[0].Status != tt.reply.status) {
				t.Fatalf("upstream-error call carried status %d and %d body bytes, want %d and %d",
					calls[0].Status, len(calls[0].Body), tt.reply.status, wantHead)
			}
			if n := len(up.recorded()); n != 1 {
				t.Fatalf("%d upstream attempts: a non-failover error must not fail over", n)
			}
			if r := stub.waitReport(); r.Status != tt.wantStatus {
				t.Fatalf("report status %d, want %d", r.Status, tt.wantStatus)
			}
		})
	}
}

func TestPassthroughLookupIsBounded(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 400, body: `{"error":{"message":"bad"}}`})
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stub.setUpstreamErrorHook(func(w http.ResponseWriter, _ upstreamErrorRequest) {
		<-release // controlsvc hangs
	})
	p := newTestPlugin(t, stub, nil)
	began := time.Now()
	rec := do(p, "/v1/responses", `{"model":"gpt-x"}`, nil)
	if rec.Code != 400 || rec.Body.String() != `{"error":{"message":"bad"}}` {
		t.Fatalf("client got %d %s, want the upstream's 400", rec.Code, rec.Body.String())
	}
	if d := time.Since(began); d < passthroughTimeout || d > passthroughTimeout+2*time.Second {
		t.Fatalf("answer took %v, want about %v", d, passthroughTimeout)
	}
}
