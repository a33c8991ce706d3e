package plugin

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

const (
	openAIContextLength = `{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`
	anthropicTooLong    = `{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}`
)

func TestIsContextLengthExceeded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want bool
	}{
		{name: "OpenAI code", body: openAIContextLength, want: true},
		{name: "Anthropic prompt is too long", body: anthropicTooLong, want: true},
		{name: "another invalid request", body: `{"error":{"type":"invalid_request_error","message":"Unknown parameter: 'foo'."}}`},
		{name: "empty", body: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := isContextLengthExceeded([]byte(tt.body)); got != tt.want {
				t.Fatalf("isContextLengthExceeded = %v, want %v", got, tt.want)
			}
		})
	}
}

// fallbackStub answers the first admission with a grant on account 1 (credential "small")
// with context_fallback as given, and a re-admission with a grant on the same account serving
// "big" (credential "big").
func fallbackStub(t *testing.T, upURL string, contextFallback bool) *contractStub {
	stub := newContractStub(t)
	stub.admitHook = func(w http.ResponseWriter, ar admitRequest) bool {
		g := grant{GrantID: "g_fb", RequestID: ar.RequestID, UserID: 7, APIKeyID: 8, GroupID: 9, Platform: "openai",
			AccountID: 1, BaseURL: upURL, Headers: map[string]string{"Authorization": "Bearer small"},
			ContextFallback: contextFallback}
		if ar.GrantID != "" {
			g.Headers["Authorization"] = "Bearer big"
			g.ServedModel, g.UpstreamModel, g.ContextFallback = "big", "big", false
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(g)
		return true
	}
	return stub
}

func TestContextLengthFallsBackOnTheSameAccount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		contextFallback bool
		small           upstreamReply
		wantStatus      int
		wantAdmits      int
	}{
		{name: "context length with a fallback", contextFallback: true,
			small: upstreamReply{status: 400, body: openAIContextLength}, wantStatus: 200, wantAdmits: 2},
		{name: "Anthropic wording with a fallback", contextFallback: true,
			small: upstreamReply{status: 400, body: anthropicTooLong}, wantStatus: 200, wantAdmits: 2},
		{name: "context length without a fallback is relayed",
			small: upstreamReply{status: 400, body: openAIContextLength}, wantStatus: 400, wantAdmits: 1},
		{name: "another 400 is relayed", contextFallback: true,
			small:      upstreamReply{status: 400, body: `{"error":{"type":"invalid_request_error","message":"bad"}}`},
			wantStatus: 400, wantAdmits: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("small", tt.small)
			up.set("big", okReply("from big"))
			stub := fallbackStub(t, up.srv.URL, tt.contextFallback)
			h := newTestHandler(t, stub, nil)
			rec := do(h, pathChat, `{"model":"small","messages":[{"role":"user","content":"a long prompt"}]}`, nil)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d: %s, want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			rep := stub.waitReport()
			admits := stub.admitCalls()
			if len(admits) != tt.wantAdmits {
				t.Fatalf("%d admit calls, want %d: %+v", len(admits), tt.wantAdmits, admits)
			}
			if tt.wantAdmits == 1 {
				if rep.ServedModel != "" || !strings.Contains(rec.Body.String(), "invalid_request_error") {
					t.Fatalf("relayed: served_model %q body %s", rep.ServedModel, rec.Body)
				}
				return
			}
			re := admits[1]
			if re.Failed == nil || re.Failed.ErrorClass != classContextLength || re.Failed.Status != 400 || len(re.Exclude) != 0 {
				t.Fatalf("re-admission %+v (failed %+v): want class %s, status 400 and no exclusion", re, re.Failed, classContextLength)
			}
			reqs := up.recorded()
			if len(reqs) != 2 {
				t.Fatalf("%d upstream requests, want 2", len(reqs))
			}
			var sent struct {
				Model string `json:"model"`
			}
			if err := json.Unmarshal(reqs[1].body, &sent); err != nil || sent.Model != "big" {
				t.Fatalf("fallback body model %q (%v), want big: %s", sent.Model, err, reqs[1].body)
			}
			if rep.Model != "small" || rep.ServedModel != "big" || rep.UpstreamModel != "big" || rep.Status != 200 {
				t.Fatalf("report model %q served %q upstream %q status %d", rep.Model, rep.ServedModel, rep.UpstreamModel, rep.Status)
			}
			if len(rep.Attempts) != 2 || rep.Attempts[0].ErrorClass != classContextLength || rep.Attempts[0].Status != 400 ||
				rep.Attempts[0].UpstreamModel != "small" || rep.Attempts[1].UpstreamModel != "big" {
				t.Fatalf("attempts %+v", rep.Attempts)
			}
		})
	}
}

// A second re-admission echoes the served model the grant names, from which controlsvc
// counts the next fallback.
func TestReadmissionEchoesServedModel(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("small", upstreamReply{status: 400, body: openAIContextLength})
	up.set("big", upstreamReply{status: 500, body: `{"error":{"message":"boom"}}`})
	up.set("huge", okReply("from huge"))
	stub := newContractStub(t)
	stub.admitHook = func(w http.ResponseWriter, ar admitRequest) bool {
		n := len(stub.admitCalls())
		g := grant{GrantID: "g_echo", RequestID: ar.RequestID, UserID: 7, APIKeyID: 8, GroupID: 9, Platform: "openai",
			AccountID: int64(n), BaseURL: up.srv.URL, ContextFallback: n == 1}
		creds := []string{"", "small", "big", "huge"}
		g.Headers = map[string]string{"Authorization": "Bearer " + creds[n]}
		if n > 1 {
			g.ServedModel, g.UpstreamModel = "big", "big-"+strconv.Itoa(n)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(g)
		return true
	}
	h := newTestHandler(t, stub, nil)
	rec := do(h, pathResponses, `{"model":"small","input":"hi"}`, nil)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	stub.waitReport()
	admits := stub.admitCalls()
	if len(admits) != 3 || admits[1].ServedModel != "" || admits[2].ServedModel != "big" {
		t.Fatalf("admits %+v: want served_model \"\" then big", admits)
	}
	if ex := admits[2].Exclude; len(ex) != 1 || ex[0] != 2 {
		t.Fatalf("second re-admission excludes %v, want the 500 account [2] only", ex)
	}
}

// A context-length refusal whose re-admission finds no fallback account is answered 400
// invalid_request_error, not as an upstream failure.
func TestContextLengthWithoutFallbackAccountIs400(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("small", upstreamReply{status: 400, body: openAIContextLength})
	stub := fallbackStub(t, up.srv.URL, true)
	inner := stub.admitHook
	stub.admitHook = func(w http.ResponseWriter, ar admitRequest) bool {
		if ar.GrantID == "" {
			return inner(w, ar)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(headerReject, rejectNoAccount)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"Service temporarily unavailable"}}`))
		return true
	}
	h := newTestHandler(t, stub, nil)
	rec := do(h, pathChat, `{"model":"small","messages":[{"role":"user","content":"long"}]}`, nil)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "invalid_request_error") {
		t.Fatalf("status %d: %s, want 400 invalid_request_error", rec.Code, rec.Body)
	}
	if rep := stub.waitReport(); rep.ErrorClass != classContextLength || rep.Status != 400 {
		t.Fatalf("report class %q status %d", rep.ErrorClass, rep.Status)
	}
}
