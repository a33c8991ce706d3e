package plugin

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// countTokensStub answers POST /internal/v1/count-tokens with answer (contract C), a
// refusal for any key but the test key.
func countTokensStub(t *testing.T, answer func() string) *contractStub {
	stub := newContractStub(t)
	stub.otherHook = func(w http.ResponseWriter, path string, body []byte) bool {
		if path != countTokensControlPath {
			return false
		}
		var c countTokensCall
		if err := json.Unmarshal(body, &c); err != nil || c.Model == "" {
			http.Error(w, "bad count-tokens body", http.StatusBadRequest)
			return true
		}
		w.Header().Set("Content-Type", "application/json")
		if c.APIKey != testClientKey {
			w.Header().Set(headerReject, "auth")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"type":"error","error":{"type":"authentication_error","message":"Invalid API key"}}`))
			return true
		}
		w.Write([]byte(answer()))
		return true
	}
	return stub
}

func accountAnswer(baseURL, upstreamModel string) string {
	return `{"account_id":7,"platform":"anthropic","base_url":"` + baseURL + `","headers":{"x-api-key":"sk-up","anthropic-version":"2023-06-01"},"upstream_model":"` + upstreamModel + `"}`
}

const countBody = `{"model":"claude-x","messages":[{"role":"user","content":"hello there"}]}`

func estimateOf(body string) string {
	return `{"input_tokens":` + strconv.FormatInt(estimateTokens([]byte(body)), 10) + `}`
}

func TestCountTokens(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	tests := []struct {
		name     string
		path     string
		reply    *upstreamReply // the account's answer; nil: controlsvc answers estimate
		answer   string         // controlsvc's answer when not the account's
		key      string
		body     string
		status   int
		want     string
		upstream bool // the upstream must have been called
	}{
		{name: "forwarded", path: "/v1/messages/count_tokens?beta=true", reply: &upstreamReply{status: 200, body: `{"input_tokens":42}`},
			status: 200, want: `{"input_tokens":42}`, upstream: true},
		{name: "unprefixed", path: "/messages/count_tokens", reply: &upstreamReply{status: 200, body: `{"input_tokens":43}`},
			status: 200, want: `{"input_tokens":43}`, upstream: true},
		{name: "estimate answer", path: "/v1/messages/count_tokens", answer: `{"estimate":true}`, status: 200, want: estimateOf(countBody)},
		{name: "upstream error", path: "/v1/messages/count_tokens", reply: &upstreamReply{status: 500, body: `{"error":{}}`},
			status: 200, want: estimateOf(countBody), upstream: true},
		{name: "upstream without input_tokens", path: "/v1/messages/count_tokens", reply: &upstreamReply{status: 200, body: `{"tokens":1}`},
			status: 200, want: estimateOf(countBody), upstream: true},
		{name: "controlsvc unwell", path: "/v1/messages/count_tokens", answer: `garbage`, status: 200, want: estimateOf(countBody)},
		{name: "refused key", path: "/v1/messages/count_tokens", answer: `{"estimate":true}`, key: "sk-pg-" + strings.Repeat("cd", 24),
			status: 401, want: `{"type":"error","error":{"type":"authentication_error","message":"Invalid API key"}}`},
		{name: "malformed key", path: "/v1/messages/count_tokens", answer: `{"estimate":true}`, key: "nope",
			status: 401, want: `{"type":"error","error":{"type":"authentication_error","message":"Invalid API key"}}`},
		{name: "no messages", path: "/v1/messages/count_tokens", answer: `{"estimate":true}`, body: `{"model":"claude-x"}`,
			status: 400, want: `{"type":"error","error":{"type":"invalid_request_error","message":"messages: Field required"}}`},
		{name: "no model", path: "/v1/messages/count_tokens", answer: `{"estimate":true}`, body: `{"messages":[]}`,
			status: 400, want: `{"type":"error","error":{"type":"invalid_request_error","message":"model is required"}}`},
		{name: "not JSON", path: "/v1/messages/count_tokens", answer: `{"estimate":true}`, body: `{"model":`,
			status: 400, want: `{"type":"error","error":{"type":"invalid_request_error","message":"Failed to parse request body"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apiKey := "sk-up-" + strings.ReplaceAll(tt.name, " ", "-")
			answer := tt.answer
			if tt.reply != nil {
				up.set(apiKey, *tt.reply)
				answer = strings.Replace(accountAnswer(up.srv.URL, "claude-x-2025"), "sk-up", apiKey, 1)
			}
			stub := countTokensStub(t, func() string { return answer })
			h := newTestHandler(t, stub, nil)
			body := tt.body
			if body == "" {
				body = countBody
			}
			key := tt.key
			if key == "" {
				key = testClientKey
			}
			before := len(up.recorded())
			rec := do(h, tt.path, body, map[string]string{"X-Api-Key": key, "Authorization": "", "anthropic-version": "2023-06-01",
				"anthropic-beta": "token-counting-2024-11-01", "X-Forwarded-For": "10.0.0.1"})
			if rec.Code != tt.status || rec.Body.String() != tt.want {
				t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Body, tt.status, tt.want)
			}
			rr := up.recorded()[before:]
			if !tt.upstream {
				if len(rr) != 0 {
					t.Fatalf("upstream called %d times, want never", len(rr))
				}
			} else {
				if len(rr) != 1 {
					t.Fatalf("upstream called %d times, want once", len(rr))
				}
				r := rr[0]
				if r.path != pathCountTokens || r.header.Get("X-Api-Key") != apiKey || r.header.Get("X-Forwarded-For") != "" ||
					r.header.Get("Anthropic-Version") != "2023-06-01" {
					t.Fatalf("upstream got %s with headers %v", r.path, r.header)
				}
				if !strings.Contains(string(r.body), `"model":"claude-x-2025"`) || !strings.Contains(string(r.body), "hello there") {
					t.Fatalf("upstream body %s, want the client's with the model mapped", r.body)
				}
				if strings.HasPrefix(tt.path, "/v1/") && strings.Contains(tt.path, "?") && r.rawQuery != "beta=true" {
					t.Fatalf("upstream query %q, want the client's", r.rawQuery)
				}
			}
			if n := len(stub.admitCalls()); n != 0 {
				t.Fatalf("%d admit calls: count_tokens must not be admitted", n)
			}
		})
	}
}

// An account that does not answer within countTokensTimeout gets the estimate in its
// place, and its request is cancelled; nothing is reported.
func TestCountTokensBound(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("sk-slow", upstreamReply{status: 200, events: []string{}, hold: true})
	stub := countTokensStub(t, func() string { return strings.Replace(accountAnswer(up.srv.URL, ""), "sk-up", "sk-slow", 1) })
	h := newTestHandler(t, stub, nil)
	start := time.Now()
	rec := do(h, "/v1/messages/count_tokens", countBody, map[string]string{"X-Api-Key": testClientKey, "Authorization": ""})
	elapsed := time.Since(start)
	if rec.Code != 200 || rec.Body.String() != estimateOf(countBody) {
		t.Fatalf("got %d %s, want the estimate", rec.Code, rec.Body)
	}
	if elapsed < countTokensTimeout || elapsed > countTokensTimeout+2*time.Second {
		t.Fatalf("answered after %v, want the %v bound", elapsed, countTokensTimeout)
	}
	select {
	case <-up.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the held upstream request was never cancelled")
	}
	stub.mu.Lock()
	n := len(stub.reports)
	stub.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d reports, want none", n)
	}
}

func TestEstimateTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int
		want int64
	}{{"one byte", 1, 1}, {"four bytes", 4, 1}, {"five bytes", 5, 2}, {"4 KiB", 4096, 1024}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := estimateTokens(make([]byte, tt.n)); got != tt.want {
				t.Fatalf("estimateTokens(%d bytes) = %d, want %d", tt.n, got, tt.want)
			}
		})
	}
}
