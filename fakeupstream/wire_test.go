package fakeupstream

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestDefaultAnswers(t *testing.T) {
	t.Parallel()
	_, ts := startFake(t)
	tests := []struct {
		name      string
		path      string
		body      string
		wantCT    string
		wantParts []string
	}{
		{name: "responses", path: "/v1/responses", body: respBody, wantCT: "application/json",
			wantParts: []string{`"object":"response"`, `"text":"Hello from the fake upstream."`, `"input_tokens":12`, `"output_tokens":5`, `"cached_tokens":0`}},
		{name: "responses under a path prefix", path: "/prefix/v1/responses", body: respBody, wantCT: "application/json",
			wantParts: []string{`"object":"response"`}},
		{name: "chat", path: "/v1/chat/completions", body: chatBody, wantCT: "application/json",
			wantParts: []string{`"object":"chat.completion"`, `"content":"Hello from the fake upstream."`, `"prompt_tokens":12`, `"completion_tokens":5`}},
		{name: "messages", path: "/v1/messages", body: msgBody, wantCT: "application/json",
			wantParts: []string{`"type":"message"`, `"text":"Hello from the fake upstream."`, `"input_tokens":12`, `"output_tokens":5`}},
		{name: "responses stream", path: "/v1/responses", body: respStream, wantCT: "text/event-stream",
			wantParts: []string{"event: response.completed\n", `"total_tokens":17`}},
		{name: "chat stream", path: "/v1/chat/completions", body: chatStream, wantCT: "text/event-stream",
			wantParts: []string{`"finish_reason":"stop"`, `"choices":[],`, "data: [DONE]\n\n"}},
		{name: "messages stream", path: "/v1/messages", body: msgStream, wantCT: "text/event-stream",
			wantParts: []string{"event: message_start\n", "event: message_stop\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := post(t, context.Background(), ts.URL+tt.path, "sk-default", tt.body, nil)
			body := readAll(t, resp)
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantCT) {
				t.Errorf("Content-Type = %q, want %s", ct, tt.wantCT)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("no X-Request-Id header")
			}
			for _, p := range tt.wantParts {
				if !strings.Contains(body, p) {
					t.Errorf("body lacks %q:\n%s", p, body)
				}
			}
		})
	}
}

func TestResponsesStreamWireFormat(t *testing.T) {
	t.Parallel()
	_, ts := startFake(t)
	resp := post(t, context.Background(), ts.URL+"/v1/responses", "k", respStream, nil)
	frames, err := readFrames(t, resp.Body)
	if err != nil {
		t.Fatalf("reading stream: %v", err)
	}
	if len(frames) != 13 { // 8 fixed events + 5 deltas of the default text
		t.Fatalf("got %d events, want 13: %+v", len(frames), frames)
	}
	for i, f := range frames {
		var d struct {
			Type           string `json:"type"`
			SequenceNumber *int   `json:"sequence_number"`
		}
		if err := json.Unmarshal([]byte(f.data), &d); err != nil {
			t.Fatalf("event %d data is not JSON: %v: %s", i, err, f.data)
		}
		if d.Type != f.event {
			t.Errorf("event %d: event line %q, data type %q", i, f.event, d.Type)
		}
		if d.SequenceNumber == nil || *d.SequenceNumber != i {
			t.Errorf("event %d: sequence_number %v, want %d", i, d.SequenceNumber, i)
		}
	}
	var created struct {
		Response struct {
			Usage  *respUsage `json:"usage"`
			Status string     `json:"status"`
		} `json:"response"`
	}
	if err := json.Unmarshal([]byte(frames[0].data), &created); err != nil {
		t.Fatal(err)
	}
	if created.Response.Usage != nil || created.Response.Status != "in_progress" {
		t.Errorf("response.created: usage %v status %q, want null and in_progress", created.Response.Usage, created.Response.Status)
	}
}

func TestScriptedErrors(t *testing.T) {
	t.Parallel()
	_, ts := startFake(t)
	tests := []struct {
		name     string
		path     string
		body     string
		status   int
		wantType string // error.type in the body
		wantTop  string // top-level "type" (Anthropic only)
	}{
		{name: "responses 429", path: "/v1/responses", body: respBody, status: 429, wantType: "requests"},
		{name: "responses 401", path: "/v1/responses", body: respBody, status: 401, wantType: "invalid_request_error"},
		{name: "chat 500", path: "/v1/chat/completions", body: chatBody, status: 500, wantType: "server_error"},
		{name: "chat stream 503", path: "/v1/chat/completions", body: chatStream, status: 503, wantType: "server_error"},
		{name: "responses stream 400", path: "/v1/responses", body: respStream, status: 400, wantType: "invalid_request_error"},
		{name: "messages 529", path: "/v1/messages", body: msgBody, status: 529, wantType: "overloaded_error", wantTop: "error"},
		{name: "messages 429", path: "/v1/messages", body: msgStream, status: 429, wantType: "rate_limit_error", wantTop: "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hdr := scriptHeader(t, Script{Status: tt.status, Headers: map[string]string{"Retry-After": "7"}})
			resp := post(t, context.Background(), ts.URL+tt.path, "k", tt.body, hdr)
			body := readAll(t, resp)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Retry-After"); got != "7" {
				t.Errorf("Retry-After = %q, want 7", got)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var e struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("error body is not JSON: %v: %s", err, body)
			}
			if e.Error.Type != tt.wantType || e.Type != tt.wantTop || e.Error.Message == "" {
				t.Errorf("error = %+v, want type %q, top-level %q and a message", e, tt.wantType, tt.wantTop)
			}
		})
	}
}

func TestBodyOverride(t *testing.T) {
	t.Parallel()
	_, ts := startFake(t)
	tests := []struct {
		name       string
		script     string
		body       string
		wantStatus int
		wantBody   string
	}{
		{name: "string body", script: `{"status":400,"body":"{\"error\":{\"message\":\"custom\"}}"}`, body: respBody,
			wantStatus: 400, wantBody: `{"error":{"message":"custom"}}`},
		{name: "json value body", script: `{"status":402,"body":{"error":{"message":"pay up"}}}`, body: chatBody,
			wantStatus: 402, wantBody: `{"error":{"message":"pay up"}}`},
		{name: "success body", script: `{"body":"not even json"}`, body: respBody,
			wantStatus: 200, wantBody: "not even json"},
		{name: "streamed body", script: `{"body":"data: {\"a\":1}\n\ndata: [DONE]\n\n"}`, body: chatStream,
			wantStatus: 200, wantBody: "data: {\"a\":1}\n\ndata: [DONE]\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := post(t, context.Background(), ts.URL+"/v1/responses", "k", tt.body, map[string]string{ScriptHeader: tt.script})
			if got := readAll(t, resp); resp.StatusCode != tt.wantStatus || got != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, got, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	_, ts := startFake(t)
	tests := []struct {
		name       string
		path       string
		body       string
		wantStatus int
		wantInBody string
	}{
		{name: "invalid json", path: "/v1/responses", body: `{`, wantStatus: 400, wantInBody: "parse the JSON"},
		{name: "no model", path: "/v1/chat/completions", body: `{"messages":[]}`, wantStatus: 400, wantInBody: "model"},
		{name: "unknown path", path: "/v1/embeddings", body: `{}`, wantStatus: 404, wantInBody: "Invalid URL"},
		{name: "messages invalid json", path: "/v1/messages", body: `nope`, wantStatus: 400, wantInBody: `"type":"error"`},
		{name: "unknown control endpoint", path: "/_fake/nothing", body: ``, wantStatus: 404, wantInBody: "unknown control endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := post(t, context.Background(), ts.URL+tt.path, "k", tt.body, nil)
			if body := readAll(t, resp); resp.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantInBody) {
				t.Errorf("got %d %s, want %d containing %q", resp.StatusCode, body, tt.wantStatus, tt.wantInBody)
			}
		})
	}
}

func TestTextPieces(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give string
		want []string
	}{
		{name: "sentence", give: "Hello from the fake upstream.", want: []string{"Hello", " from", " the", " fake", " upstream."}},
		{name: "one word", give: "Hi", want: []string{"Hi"}},
		{name: "double space", give: "a  b", want: []string{"a", "  b"}},
		{name: "leading space", give: " a b", want: []string{" a", " b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := textPieces(tt.give)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("textPieces(%q) = %q, want %q", tt.give, got, tt.want)
			}
		})
	}
}
