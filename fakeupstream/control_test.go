package fakeupstream

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

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

// reset_before_headers drops the connection once the request was read: the client gets
// no response at all, and the request is still recorded.
func TestResetBeforeHeaders(t *testing.T) {
	t.Parallel()
	srv, ts := startFake(t)
	body, _ := json.Marshal(Script{ResetBeforeHeaders: true})
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/responses", strings.NewReader(respBody))
	req.Header.Set(ScriptHeader, string(body))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got %d, want a transport error", resp.StatusCode)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Fatalf("%d requests recorded, want 1", n)
	}
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
