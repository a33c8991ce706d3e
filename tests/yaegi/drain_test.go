package yaegi

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// Billing that survives the client (docs/billing.md, "Disconnects, drains and estimates"), with the plugin
// interpreted: a client that leaves a committed stream is billed the upstream's own usage
// after the drain, and a non-stream reply far above any buffer yields its usage.

func TestDrainAfterDisconnectThroughPlugin(t *testing.T) {
	s := getStack(t)
	tests := []struct {
		name     string
		platform string
		script   fakeupstream.Script
		body     string
		// the usage row the upstream's own counts give
		wantIn, wantCacheRead, wantOut int64
	}{
		{name: "pass-through", platform: "openai",
			script: fakeupstream.Script{Text: "one two three four five six seven eight", ChunkDelayMS: 50,
				Usage: &fakeupstream.Usage{InputTokens: 30, OutputTokens: 8}},
			body: `{"model":"gpt-4o","input":"count","stream":true}`, wantIn: 30, wantOut: 8},
		{name: "converted", platform: "anthropic",
			script: fakeupstream.Script{Body: fakeupstream.RawBody(anthropicToolStream), ChunkDelayMS: 50},
			body:   `{"model":"claude-sonnet-4-5","input":"weather?","stream":true}`, wantIn: 10, wantCacheRead: 5, wantOut: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := tt.script
			tn := s.seedOn(t, tt.platform, accountSpec{name: "a", priority: 1, script: &script})
			leaveAfterFirstDelta(t, s.handler, tn.key, tt.body)
			rows := s.waitUsage(t, tn.keyID, 1)
			r := rows[0]
			if r.Status != 499 || r.ErrorClass != "client_gone" || r.InputTokens != tt.wantIn ||
				r.CacheReadTokens != tt.wantCacheRead || r.OutputTokens != tt.wantOut {
				t.Errorf("usage row %+v, want 499 client_gone billed the upstream's %d input, %d cache read, %d output tokens",
					r, tt.wantIn, tt.wantCacheRead, tt.wantOut)
			}
			s.waitIdle(t, tn)
		})
	}
}

// leaveAfterFirstDelta streams a Responses request through h behind a real server (so that
// the disconnect is real) and hangs up after the first text delta: past the commit point.
func leaveAfterFirstDelta(t *testing.T, h http.Handler, key, body string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/responses", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended before its first delta: %v", err)
		}
		if strings.HasPrefix(line, "event: response.output_text.delta") {
			return // the deferred cancel and Close hang up
		}
	}
}

func TestLargeNonStreamReplyThroughPlugin(t *testing.T) {
	s := getStack(t)
	body := `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat("token ", (5<<20)/6) + `"},"finish_reason":"length"}],"usage":{"prompt_tokens":20,"completion_tokens":50000,"total_tokens":50020}}`
	tn := s.seed(t, accountSpec{name: "a", priority: 1, script: &fakeupstream.Script{Body: fakeupstream.RawBody(body)}})

	rec := serve(t, s.handler, "/v1/chat/completions", bearer(tn.key),
		`{"model":"gpt-4o","messages":[{"role":"user","content":"write a lot"}]}`)
	if rec.Code != http.StatusOK || rec.Body.Len() != len(body) {
		t.Fatalf("status %d, %d bytes of %d", rec.Code, rec.Body.Len(), len(body))
	}
	rows := s.waitUsage(t, tn.keyID, 1)
	if r := rows[0]; r.Status != 200 || r.InputTokens != 20 || r.OutputTokens != 50000 {
		t.Errorf("usage row %+v, want 200 with 20 input and 50000 output tokens", r)
	}
	s.waitIdle(t, tn)
}

// A "usage" key inside the model's output (here an object holding a "{" string) must not
// hide the reply's own usage, interpreted as compiled.
func TestNonStreamReplyNestedUsageThroughPlugin(t *testing.T) {
	s := getStack(t)
	body := `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"x",` +
		`"extra":{"a":{"usage":{"prompt_tokens":1,"completion_tokens":1}},"b":{"usage":{"s":"{\"\\"}}}}` +
		`,"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":300,"total_tokens":320}}`
	tn := s.seed(t, accountSpec{name: "a", priority: 1, script: &fakeupstream.Script{Body: fakeupstream.RawBody(body)}})

	rec := serve(t, s.handler, "/v1/chat/completions", bearer(tn.key),
		`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	if rec.Code != http.StatusOK || rec.Body.Len() != len(body) {
		t.Fatalf("status %d, %d bytes of %d", rec.Code, rec.Body.Len(), len(body))
	}
	rows := s.waitUsage(t, tn.keyID, 1)
	if r := rows[0]; r.Status != 200 || r.InputTokens != 20 || r.OutputTokens != 300 {
		t.Errorf("usage row %+v, want 200 with 20 input and 300 output tokens", r)
	}
	s.waitIdle(t, tn)
}
