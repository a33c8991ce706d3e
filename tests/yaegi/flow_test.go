package yaegi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// serve runs one request through the Yaegi-loaded plugin into a recorder.
func serve(t *testing.T, h http.Handler, path string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func bearer(key string) map[string]string { return map[string]string{"Authorization": "Bearer " + key} }

// errorBody is the client-facing error format.
type errorBody struct {
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeError(t *testing.T, rec *httptest.ResponseRecorder) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, rec.Body.String())
	}
	return e
}

func TestNonStreamThroughPlugin(t *testing.T) {
	s := getStack(t)
	usage := fakeupstream.Usage{InputTokens: 100, CachedTokens: 40, OutputTokens: 7}
	tn := s.seed(t, accountSpec{
		name: "a", priority: 1, mapping: map[string]string{"gpt-4o": "gpt-4o-2024-08-06"},
		script: &fakeupstream.Script{Text: "Forty-two is the answer.", Usage: &usage},
	})
	cred := tn.accounts[0].cred
	tests := []struct {
		name         string
		path         string // as the client sends it
		upstreamPath string // as the fake must see it
		body         string
		wantInBody   string
	}{
		{name: "responses", path: "/v1/responses", upstreamPath: "/v1/responses",
			body: `{"model":"gpt-4o","input":"What is the answer?"}`, wantInBody: `"text":"Forty-two is the answer."`},
		{name: "responses alias", path: "/openai/v1/responses", upstreamPath: "/v1/responses",
			body: `{"model":"gpt-4o","input":"What is the answer?"}`, wantInBody: `"object":"response"`},
		{name: "chat completions", path: "/v1/chat/completions", upstreamPath: "/v1/chat/completions",
			body: `{"model":"gpt-4o","messages":[{"role":"user","content":"What is the answer?"}]}`, wantInBody: `"content":"Forty-two is the answer."`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, s.handler, tt.path, bearer(tn.key), tt.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tt.wantInBody) {
				t.Errorf("body lacks %s: %s", tt.wantInBody, rec.Body)
			}
			if strings.Contains(rec.Body.String(), cred) {
				t.Errorf("response reveals the upstream credential")
			}
			ups := s.upstreamRequests(cred)
			if len(ups) != i+1 {
				t.Fatalf("fake saw %d requests with the account credential, want %d", len(ups), i+1)
			}
			got := ups[len(ups)-1]
			if got.Path != tt.upstreamPath {
				t.Errorf("upstream path %q, want %q", got.Path, tt.upstreamPath)
			}
			if strings.Contains(strings.Join(got.Headers.Values("Authorization"), ","), tn.key) ||
				got.Headers.Get("X-Api-Key") != "" {
				t.Errorf("the client's key reached the upstream: %v", got.Headers)
			}
			var sent struct {
				Model string `json:"model"`
			}
			if err := json.Unmarshal([]byte(got.Body), &sent); err != nil || sent.Model != "gpt-4o-2024-08-06" {
				t.Errorf("upstream model %q (err %v), want the mapped gpt-4o-2024-08-06", sent.Model, err)
			}
		})
	}

	rows := s.waitUsage(t, tn.keyID, len(tests))
	for _, r := range rows {
		if r.Status != 200 || r.AccountID != tn.accounts[0].id || r.Attempts != 1 || r.Model != "gpt-4o" ||
			r.InputTokens != 60 || r.CacheReadTokens != 40 || r.OutputTokens != 7 || r.ErrorClass != "" {
			t.Errorf("usage row %+v, want status 200, account %d, 1 attempt, model gpt-4o, input 60 (100 minus 40 cached), cache read 40, output 7",
				r, tn.accounts[0].id)
		}
	}
	s.waitIdle(t, tn)
}

func TestStreamThroughPlugin(t *testing.T) {
	s := getStack(t)
	usage := fakeupstream.Usage{InputTokens: 50, CachedTokens: 10, OutputTokens: 6, ReasoningTokens: 2}
	tn := s.seed(t, accountSpec{
		name: "a", priority: 1,
		script: &fakeupstream.Script{Text: "one two three four five six", Usage: &usage, ChunkDelayMS: 60},
	})

	t.Run("responses events arrive as they are sent", func(t *testing.T) {
		// A real server around the plugin shows whether events are flushed one by one.
		srv := httptest.NewServer(s.handler)
		defer srv.Close()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/responses",
			strings.NewReader(`{"model":"gpt-4o","input":"count","stream":true}`))
		req.Header.Set("Authorization", "Bearer "+tn.key)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d, content type %q; want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		r := bufio.NewReader(resp.Body)
		var events []string
		var firstAt, lastAt time.Duration
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			if ev, ok := strings.CutPrefix(strings.TrimSpace(line), "event: "); ok {
				if len(events) == 0 {
					firstAt = time.Since(start)
				}
				lastAt = time.Since(start)
				events = append(events, ev)
			}
		}
		if len(events) != 14 || events[0] != "response.created" || events[len(events)-1] != "response.completed" {
			t.Fatalf("events %v, want 14 from response.created to response.completed", events)
		}
		// 13 gaps of 60 ms upstream: buffering would deliver everything at the end.
		if lastAt-firstAt < 500*time.Millisecond {
			t.Errorf("first event at %s, last at %s: the stream was buffered, not flushed per event", firstAt, lastAt)
		}
	})

	t.Run("chat into a recorder", func(t *testing.T) {
		rec := serve(t, s.handler, "/v1/chat/completions", bearer(tn.key),
			`{"model":"gpt-4o","messages":[{"role":"user","content":"count"}],"stream":true}`)
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if !rec.Flushed {
			t.Errorf("the plugin never flushed the response writer")
		}
		body := rec.Body.String()
		var text strings.Builder
		for _, line := range strings.Split(body, "\n") {
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok || data == "[DONE]" {
				continue
			}
			var c struct {
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
			}
			if err := json.Unmarshal([]byte(data), &c); err != nil {
				t.Fatalf("chunk is not JSON: %v: %s", err, data)
			}
			for _, ch := range c.Choices {
				text.WriteString(ch.Delta.Content)
			}
		}
		if text.String() != "one two three four five six" || !strings.HasSuffix(body, "data: [DONE]\n\n") {
			t.Errorf("streamed text %q, want the fake's text and a final [DONE]; body:\n%s", text.String(), body)
		}
	})

	rows := s.waitUsage(t, tn.keyID, 2)
	for _, r := range rows {
		if r.Status != 200 || !r.Stream || r.InputTokens != 40 || r.CacheReadTokens != 10 || r.OutputTokens != 6 {
			t.Errorf("usage row %+v, want a 200 stream with input 40, cache read 10, output 6", r)
		}
	}
	s.waitIdle(t, tn)
}

// TestConcurrentRequests sends requests at the same time through the one plugin instance,
// as Traefik does: every one must succeed, be reported once, and leave no slot behind.
func TestConcurrentRequests(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t, accountSpec{name: "a", priority: 1, script: &fakeupstream.Script{ChunkDelayMS: 5}},
		accountSpec{name: "b", priority: 1, script: &fakeupstream.Script{ChunkDelayMS: 5}})
	const n = 8
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		body := `{"model":"gpt-4o","input":"hi"}`
		if i%2 == 1 {
			body = `{"model":"gpt-4o","input":"hi","stream":true}`
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tn.key)
			rec := httptest.NewRecorder()
			s.handler.ServeHTTP(rec, req)
			codes <- rec.Code
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("a concurrent request got %d, want 200", c)
		}
	}
	rows := s.waitUsage(t, tn.keyID, n)
	if len(rows) != n {
		t.Errorf("%d usage rows, want %d (one per request)", len(rows), n)
	}
	s.waitIdle(t, tn)
}
