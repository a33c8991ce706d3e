package yaegi

import (
	"strings"
	"testing"

	"github.com/poolgate/poolgate/fakeupstream"
)

// Stream endings as the providers mean them (docs/design.md, "Streams: commit point, endings,
// in-stream errors"), interpreted: in-stream errors
// before the commit point fail over unseen, after it they end the stream; a Chat stream is
// complete without [DONE]; the usage chunk the gateway asked for stays with the gateway.

const (
	overloadedAfterStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_a\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n" +
		"event: ping\ndata: {\"type\":\"ping\"}\n\n" +
		"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
	// The account is out of credit: failed over as quota, which pauses the account.
	billingAfterStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_a\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n" +
		"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"billing_error\",\"message\":\"Your credit balance is too low\"}}\n\n"
	earlyResponseFailed = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_a\",\"status\":\"in_progress\"}}\n\n" +
		"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"resp_a\",\"status\":\"failed\",\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"Rate limit reached\"}}}\n\n"
	chatRole   = `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}` + "\n\n"
	chatHello  = `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hello"},"finish_reason":null}],"usage":null}` + "\n\n"
	chatStop   = `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}` + "\n\n"
	chatUsage  = `data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}` + "\n\n"
	chatError  = `data: {"error":{"message":"The server had an error","type":"server_error","code":null}}` + "\n\n"
	chatStream = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}`
)

func TestInStreamErrorFailsOver(t *testing.T) {
	s := getStack(t)
	tests := []struct {
		name, platform, path, body, badBody string
		wantStart, wantEnd                  string
		wantStatus                          int // of the failed attempt: the status the error implies
		wantClass                           string
	}{
		{"anthropic overloaded after message_start", "anthropic", "/v1/messages",
			`{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}],"stream":true}`,
			overloadedAfterStart, "event: message_start", "event: message_stop", 529, "in_stream_error"},
		{"anthropic billing_error after message_start", "anthropic", "/v1/messages",
			`{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}],"stream":true}`,
			billingAfterStart, "event: message_start", "event: message_stop", 402, "quota"},
		{"early response.failed, rate limited", "openai", "/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`,
			earlyResponseFailed, "event: response.created", "event: response.completed", 429, "in_stream_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := s.seedOn(t, tt.platform,
				accountSpec{name: "failing", priority: 1, script: &fakeupstream.Script{Body: fakeupstream.RawBody(tt.badBody)}},
				accountSpec{name: "healthy", priority: 2, script: &fakeupstream.Script{Text: "from the healthy account"}})
			rec := serve(t, s.handler, tt.path, bearer(tn.key), tt.body)
			body := rec.Body.String()
			// The failing account's response is "resp_a", quotes included: the healthy one's
			// random id may begin with resp_a too.
			if rec.Code != 200 || !strings.Contains(body, "healthy") || strings.Count(body, tt.wantStart) != 1 ||
				!strings.Contains(body, tt.wantEnd) || strings.Contains(body, "Overloaded") || strings.Contains(body, `"resp_a"`) {
				t.Fatalf("got %d:\n%s\nwant only the healthy account's stream", rec.Code, body)
			}
			rows := s.waitUsage(t, tn.keyID, 1)
			if r := rows[0]; r.Status != 200 || r.ErrorClass != "" || r.AccountID != tn.accounts[1].id || r.Attempts != 2 {
				t.Errorf("usage row %+v, want a clean 200 from account %d after 2 attempts", r, tn.accounts[1].id)
			}
			var detail struct {
				Attempts []struct {
					Status     int    `json:"status"`
					ErrorClass string `json:"error_class"`
				} `json:"attempts"`
			}
			s.admin.do(t, "GET", "/usage/"+rows[0].RequestID, nil, 200, &detail)
			if len(detail.Attempts) != 2 || detail.Attempts[0].Status != tt.wantStatus || detail.Attempts[0].ErrorClass != tt.wantClass {
				t.Errorf("attempts %+v, want the first with status %d, %s", detail.Attempts, tt.wantStatus, tt.wantClass)
			}
			s.waitIdle(t, tn)
		})
	}
}

func TestChatStreamEndingsInterpreted(t *testing.T) {
	s := getStack(t)
	tests := []struct {
		name, request, upstream, want, wantClass string
	}{
		{"no [DONE] after finish_reason and usage", chatStream, chatRole + chatHello + chatStop + chatUsage,
			chatRole + chatHello + chatStop, ""},
		{"usage chunk kept from a client that did not ask", chatStream, chatRole + chatHello + chatStop + chatUsage + "data: [DONE]\n\n",
			chatRole + chatHello + chatStop + "data: [DONE]\n\n", ""},
		{"usage chunk passed to a client that asked",
			`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
			chatRole + chatHello + chatStop + chatUsage + "data: [DONE]\n\n", chatRole + chatHello + chatStop + chatUsage + "data: [DONE]\n\n", ""},
		{"error chunk after output ends the stream", chatStream, chatRole + chatHello + chatError,
			chatRole + chatHello + chatError, "in_stream_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := s.seed(t, accountSpec{name: "a", priority: 1, script: &fakeupstream.Script{Body: fakeupstream.RawBody(tt.upstream)}},
				accountSpec{name: "b", priority: 2})
			rec := serve(t, s.handler, "/v1/chat/completions", bearer(tn.key), tt.request)
			if rec.Code != 200 || rec.Body.String() != tt.want {
				t.Fatalf("got %d %q,\nwant %q", rec.Code, rec.Body, tt.want)
			}
			rows := s.waitUsage(t, tn.keyID, 1)
			r := rows[0]
			if r.Status != 200 || r.ErrorClass != tt.wantClass || r.AccountID != tn.accounts[0].id || r.Attempts != 1 {
				t.Errorf("usage row %+v, want 200 class %q from the first account", r, tt.wantClass)
			}
			if tt.wantClass == "" && (r.InputTokens != 9 || r.OutputTokens != 3) {
				t.Errorf("usage row %+v, want the usage chunk's 9 in, 3 out", r)
			}
			if n := len(s.upstreamRequests(tn.accounts[1].cred)); n != 0 {
				t.Errorf("the second account got %d requests, want 0", n)
			}
			s.waitIdle(t, tn)
		})
	}
}
