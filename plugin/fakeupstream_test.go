package plugin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/fakeupstream"
	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// newFakeUpstream serves the repository's programmable fake upstream.
func newFakeUpstream(t *testing.T) (*fakeupstream.Server, string) {
	t.Helper()
	fake := fakeupstream.New()
	srv := httptest.NewServer(fake)
	t.Cleanup(func() {
		fake.Close()
		srv.Close()
	})
	return fake, srv.URL
}

// tokens reads input and output tokens from raw usage in the given format.
func tokens(t *testing.T, format string, raw json.RawMessage) (in, out, cached int) {
	t.Helper()
	var u struct {
		InputTokens        int `json:"input_tokens"`
		OutputTokens       int `json:"output_tokens"`
		PromptTokens       int `json:"prompt_tokens"`
		CompletionTokens   int `json:"completion_tokens"`
		CacheRead          int `json:"cache_read_input_tokens"`
		InputTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"input_tokens_details"`
		PromptTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	}
	if err := json.Unmarshal(raw, &u); err != nil || jsonsse.IsNull(raw) {
		t.Fatalf("usage %s: %v", raw, err)
	}
	switch format {
	case usageChat:
		return u.PromptTokens, u.CompletionTokens, u.PromptTokensDetails.CachedTokens
	case usageAnthropic:
		return u.InputTokens, u.OutputTokens, u.CacheRead
	}
	return u.InputTokens, u.OutputTokens, u.InputTokensDetails.CachedTokens
}

func TestThroughFakeUpstream(t *testing.T) {
	t.Parallel()
	fake, fakeURL := newFakeUpstream(t)
	stub := newContractStub(t, stubAccount{id: 1, baseURL: fakeURL, apiKey: "acct-1"})
	url := servePlugin(t, newTestHandler(t, stub, nil))
	// A credential script: the plugin forwards no X-Fake-Script header (headers.go).
	sc, err := fakeupstream.ParseScript([]byte(`{"text":"four words of text","usage":{"input_tokens":30,"cached_tokens":10,"output_tokens":7}}`))
	if err != nil {
		t.Fatal(err)
	}
	fake.SetCredentialScript("acct-1", sc)

	tests := []struct {
		name    string
		path    string
		body    string
		wantIn  int // as the upstream counts it
		wantOut int
		wantSSE bool
	}{
		{"responses", "/v1/responses", `{"model":"gpt-4o","input":"hi"}`, 30, 7, false},
		{"responses stream", "/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`, 30, 7, true},
		{"responses alias", "/openai/v1/responses", `{"model":"gpt-4o","input":"hi"}`, 30, 7, false},
		{"chat", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, 30, 7, false},
		{"chat stream without include_usage", "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`, 30, 7, true},
		// Anthropic's input_tokens exclude cache reads.
		{"messages", "/v1/messages", `{"model":"claude","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`, 20, 7, false},
		{"messages stream", "/v1/messages", `{"model":"claude","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, 20, 7, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, url+tt.path, strings.NewReader(tt.body))
			req.Header.Set("X-Api-Key", testClientKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || isEventStream(resp.Header.Get("Content-Type")) != tt.wantSSE {
				t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if !strings.Contains(string(body), "four") {
				t.Fatalf("answer text missing: %s", body)
			}
			r := stub.waitReports(i + 1)[i]
			in, out, cached := tokens(t, usageFormatFor(r.Path), r.Usage)
			if in != tt.wantIn || out != tt.wantOut || cached != 10 || r.Status != 200 || r.ErrorClass != "" {
				t.Fatalf("report usage %s (in %d out %d cached %d), status %d %q", r.Usage, in, out, cached, r.Status, r.ErrorClass)
			}
		})
	}
}

func TestFakeUpstreamFailoverAndStreamCut(t *testing.T) {
	t.Parallel()
	fake, fakeURL := newFakeUpstream(t)
	fake.SetCredentialScript("acct-1", fakeupstream.Script{Status: 429, Headers: map[string]string{"Retry-After": "4"}})
	// Five events: created, in_progress, output_item.added, content_part.added and the
	// first delta, which commits the stream; the cut after it becomes an in-stream error.
	fake.SetCredentialScript("acct-2", fakeupstream.Script{CutAfterEvents: fakeupstream.Events(5)})
	stub := newContractStub(t,
		stubAccount{id: 1, baseURL: fakeURL, apiKey: "acct-1"},
		stubAccount{id: 2, baseURL: fakeURL, apiKey: "acct-2"},
	)
	p := newTestPlugin(t, stub, nil)

	rec := do(p, "/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`, nil)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	if body := rec.Body.String(); !strings.Contains(body, "output_text.delta") ||
		!strings.HasSuffix(body, "\n\n") || !strings.Contains(body, "event: response.failed\n") ||
		strings.Contains(body, "response.completed") {
		t.Fatalf("body does not end with response.failed after the delta: %s", body)
	}
	got := fake.Requests()
	if len(got) != 2 || got[0].Headers.Get("Authorization") != "Bearer acct-1" || got[1].Headers.Get("Authorization") != "Bearer acct-2" {
		t.Fatalf("fake saw %d requests", len(got))
	}
	calls := stub.admitCalls()
	if len(calls) != 2 || calls[1].Failed == nil || calls[1].Failed.RetryAfter != "4" {
		t.Fatalf("admits = %+v", calls)
	}
	r := stub.waitReport()
	if r.Status != 200 || r.ErrorClass != "stream_cut" || r.AccountID != 2 || !jsonsse.IsNull(r.Usage) || len(r.Attempts) != 2 {
		t.Fatalf("report = %+v usage %s", r, r.Usage)
	}
}
