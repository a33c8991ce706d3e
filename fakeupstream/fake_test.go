package fakeupstream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, ctx context.Context, url, key, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

func scriptHeader(t *testing.T, sc Script) map[string]string {
	t.Helper()
	b, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{ScriptHeader: string(b)}
}

const (
	respBody   = `{"model":"gpt-4o","input":"hi"}`
	respStream = `{"model":"gpt-4o","input":"hi","stream":true}`
	chatBody   = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	chatStream = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`
	msgBody    = `{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	msgStream  = `{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"stream":true}`
)

// frame is one SSE frame.
type frame struct {
	event string
	data  string
}

// readFrame reads the next SSE frame.
func readFrame(r *bufio.Reader) (frame, error) {
	var f frame
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return f, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			return f, nil
		case strings.HasPrefix(line, "event: "):
			f.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			f.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func readFrames(t *testing.T, body io.Reader) ([]frame, error) {
	t.Helper()
	r := bufio.NewReader(body)
	var frames []frame
	for {
		f, err := readFrame(r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return frames, nil
			}
			return frames, err
		}
		frames = append(frames, f)
	}
}

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

func TestDelays(t *testing.T) {
	t.Parallel()
	_, ts := startFake(t)

	t.Run("delay before headers", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		resp := post(t, context.Background(), ts.URL+"/v1/responses", "k", respBody, scriptHeader(t, Script{DelayMS: 150}))
		if el := time.Since(start); el < 150*time.Millisecond {
			t.Errorf("headers after %s, want >= 150ms", el)
		}
		if resp.StatusCode != 200 {
			t.Errorf("status = %d", resp.StatusCode)
		}
	})

	t.Run("chunk delay between events", func(t *testing.T) {
		t.Parallel()
		resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", "k", chatStream,
			scriptHeader(t, Script{ChunkDelayMS: 40, Text: "a b"}))
		r := bufio.NewReader(resp.Body)
		var times []time.Time
		for {
			f, err := readFrame(r)
			if err != nil {
				break
			}
			times = append(times, time.Now())
			if f.data == "[DONE]" {
				break
			}
		}
		// role, "a", " b", finish, usage, [DONE]
		if len(times) != 6 {
			t.Fatalf("got %d events, want 6", len(times))
		}
		if total := times[len(times)-1].Sub(times[0]); total < 5*40*time.Millisecond {
			t.Errorf("events spread over %s, want >= 200ms (5 gaps of 40ms)", total)
		}
	})

	t.Run("client gone during delay", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/responses", strings.NewReader(respBody))
		req.Header.Set(ScriptHeader, `{"delay_ms":60000}`)
		start := time.Now()
		_, err := http.DefaultClient.Do(req)
		if err == nil {
			t.Fatal("request with a 60 s delay succeeded within its 100 ms deadline")
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("cancel took %s", time.Since(start))
		}
	})
}

func TestCut(t *testing.T) {
	t.Parallel()
	_, ts := startFake(t)
	tests := []struct {
		name       string
		path       string
		body       string
		cut        int
		wantFrames int
	}{
		{name: "responses after 3 events", path: "/v1/responses", body: respStream, cut: 3, wantFrames: 3},
		{name: "responses right after headers", path: "/v1/responses", body: respStream, cut: 0, wantFrames: 0},
		{name: "chat after 2 events", path: "/v1/chat/completions", body: chatStream, cut: 2, wantFrames: 2},
		{name: "messages after 4 events", path: "/v1/messages", body: msgStream, cut: 4, wantFrames: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := post(t, context.Background(), ts.URL+tt.path, "k", tt.body, scriptHeader(t, Script{CutAfterEvents: Events(tt.cut)}))
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			frames, err := readFrames(t, resp.Body)
			if err == nil {
				t.Errorf("stream ended cleanly, want an abrupt close")
			}
			if len(frames) != tt.wantFrames {
				t.Errorf("got %d events before the cut, want %d", len(frames), tt.wantFrames)
			}
		})
	}

	t.Run("non-stream body cut in half", func(t *testing.T) {
		t.Parallel()
		resp := post(t, context.Background(), ts.URL+"/v1/responses", "k", respBody, scriptHeader(t, Script{CutAfterEvents: Events(0)}))
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Errorf("body read cleanly, want an abrupt close")
		}
		if len(b) == 0 || json.Valid(b) {
			t.Errorf("got %d bytes (valid JSON %v), want a truncated body", len(b), json.Valid(b))
		}
	})
}

func TestStall(t *testing.T) {
	t.Parallel()
	_, ts := startFake(t)

	t.Run("stream stalls until the client goes", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		resp := post(t, ctx, ts.URL+"/v1/responses", "k", respStream, scriptHeader(t, Script{StallAfterEvents: Events(2)}))
		r := bufio.NewReader(resp.Body)
		for i := 0; i < 2; i++ {
			if _, err := readFrame(r); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		got := make(chan error, 1)
		go func() { _, err := readFrame(r); got <- err }()
		select {
		case err := <-got:
			t.Fatalf("third read returned (%v) during the stall", err)
		case <-time.After(300 * time.Millisecond):
		}
		cancel()
		select {
		case err := <-got:
			if err == nil {
				t.Errorf("read after cancel succeeded")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("read still blocked 5 s after the client cancelled")
		}
	})

	t.Run("Close releases a stall", func(t *testing.T) {
		t.Parallel()
		local := New()
		lts := httptest.NewServer(local)
		defer lts.Close()
		resp := post(t, context.Background(), lts.URL+"/v1/responses", "k", respBody, scriptHeader(t, Script{StallAfterEvents: Events(0)}))
		done := make(chan error, 1)
		go func() { _, err := io.ReadAll(resp.Body); done <- err }()
		time.Sleep(100 * time.Millisecond)
		local.Close()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("stalled body ended cleanly after Close, want an abrupt end")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("stalled response not released by Close")
		}
	})
}

func TestCredentialScripts(t *testing.T) {
	t.Parallel()
	_, ts := startFake(t)
	put := func(t *testing.T, key, script string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, ts.URL+"/_fake/credentials/"+key, strings.NewReader(script))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	del := func(t *testing.T, key string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodDelete, ts.URL+"/_fake/credentials/"+key, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE credential: %d", resp.StatusCode)
		}
	}
	statuses := func(t *testing.T, key string, n int, hdr map[string]string) []int {
		t.Helper()
		var out []int
		for i := 0; i < n; i++ {
			resp := post(t, context.Background(), ts.URL+"/v1/responses", key, respBody, hdr)
			readAll(t, resp)
			out = append(out, resp.StatusCode)
		}
		return out
	}
	eq := func(a, b []int) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}

	tests := []struct {
		name   string
		key    string
		script string // PUT before the requests; "" = none
		header map[string]string
		n      int
		want   []int
	}{
		{name: "times 2 then default", key: "sk-times", script: `{"status":429,"times":2}`, n: 4, want: []int{429, 429, 200, 200}},
		{name: "forever", key: "sk-forever", script: `{"status":503}`, n: 3, want: []int{503, 503, 503}},
		{name: "fail shorthand", key: "fail:401", n: 2, want: []int{401, 401}},
		{name: "credential script beats shorthand", key: "fail:500", script: `{"status":202}`, n: 1, want: []int{202}},
		{name: "header beats credential", key: "sk-hdr", script: `{"status":500}`, header: map[string]string{ScriptHeader: `{"status":201}`}, n: 1, want: []int{201}},
		{name: "header does not consume times", key: "sk-hdr-times", script: `{"status":429,"times":1}`, header: map[string]string{ScriptHeader: `{}`}, n: 2, want: []int{200, 200}},
		{name: "unprogrammed key", key: "sk-nothing", n: 1, want: []int{200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.script != "" {
				if code := put(t, tt.key, tt.script); code != http.StatusNoContent {
					t.Fatalf("PUT script: %d", code)
				}
			}
			if got := statuses(t, tt.key, tt.n, tt.header); !eq(got, tt.want) {
				t.Errorf("statuses = %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("x-api-key and delete", func(t *testing.T) {
		t.Parallel()
		if code := put(t, "sk-ant-x", `{"status":529}`); code != http.StatusNoContent {
			t.Fatalf("PUT: %d", code)
		}
		resp := post(t, context.Background(), ts.URL+"/v1/messages", "", msgBody, map[string]string{"x-api-key": "sk-ant-x"})
		if body := readAll(t, resp); resp.StatusCode != 529 || !strings.Contains(body, "overloaded_error") {
			t.Fatalf("got %d %s, want 529 overloaded_error", resp.StatusCode, body)
		}
		del(t, "sk-ant-x")
		resp = post(t, context.Background(), ts.URL+"/v1/messages", "", msgBody, map[string]string{"x-api-key": "sk-ant-x"})
		if readAll(t, resp); resp.StatusCode != 200 {
			t.Errorf("after DELETE: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("invalid scripts", func(t *testing.T) {
		t.Parallel()
		for _, bad := range []string{`{"status":"x"}`, `{"status":42}`, `{"delay_ms":-1}`, `not json`, `{"cut_after_events":-2}`} {
			if code := put(t, "sk-bad", bad); code != http.StatusBadRequest {
				t.Errorf("PUT %s: %d, want 400", bad, code)
			}
		}
		resp := post(t, context.Background(), ts.URL+"/v1/responses", "k", respBody, map[string]string{ScriptHeader: `{bad`})
		if body := readAll(t, resp); resp.StatusCode != 400 || !strings.Contains(body, "X-Fake-Script") {
			t.Errorf("bad header script: %d %s, want 400 naming X-Fake-Script", resp.StatusCode, body)
		}
	})
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	fake, ts := startFake(t)
	post(t, context.Background(), ts.URL+"/v1/responses?x=1", "sk-one", respBody, map[string]string{"X-Extra": "yes"})
	post(t, context.Background(), ts.URL+"/v1/chat/completions", "sk-two", chatBody, nil)
	post(t, context.Background(), ts.URL+"/v2/unknown", "sk-three", "{}", nil)

	get := func() []RecordedRequest {
		resp, err := http.Get(ts.URL + "/_fake/requests")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Items []RecordedRequest `json:"items"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out.Items
	}
	items := get()
	if len(items) != 3 {
		t.Fatalf("got %d logged requests, want 3", len(items))
	}
	first := items[0]
	if first.Method != "POST" || first.Path != "/v1/responses" || first.Query != "x=1" || first.Body != respBody ||
		first.Headers.Get("Authorization") != "Bearer sk-one" || first.Headers.Get("X-Extra") != "yes" || first.Time.IsZero() {
		t.Errorf("first entry = %+v", first)
	}
	if items[1].Path != "/v1/chat/completions" || items[2].Path != "/v2/unknown" {
		t.Errorf("order: %s, %s; want chat then unknown (newest last)", items[1].Path, items[2].Path)
	}
	if !items[1].Time.After(first.Time) && !items[1].Time.Equal(first.Time) {
		t.Errorf("times not ascending")
	}

	req, _ := http.NewRequest(http.MethodDelete, ts.URL+"/_fake/requests", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := get(); len(got) != 0 || len(fake.Requests()) != 0 {
		t.Errorf("after DELETE: %d entries, want 0", len(got))
	}
}

func TestRequestLogIsBounded(t *testing.T) {
	t.Parallel()
	fake := New()
	fake.MaxRecorded = 3
	for i := 0; i < 5; i++ {
		rec := httptest.NewRecorder()
		fake.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(`{"model":"m`+string(rune('0'+i))+`"}`)))
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	got := fake.Requests()
	if len(got) != 3 || !strings.Contains(got[0].Body, "m2") || !strings.Contains(got[2].Body, "m4") {
		t.Errorf("log = %+v, want the last 3 (m2..m4)", got)
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
