package yaegi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// Waiting for admission under Yaegi (docs/design.md, "Redis"): a streaming request that
// waits in the user's queue of the real controlsvc gets keep-alives from the interpreted
// timer callback, then either its stream or a terminal in-stream error.

// limitUser sets the tenant's user concurrency; the key has not been used yet, so no cache
// in controlsvc holds the old value.
func (s *stack) limitUser(t *testing.T, tn tenant, concurrency int) {
	t.Helper()
	s.admin.do(t, http.MethodPatch, "/users/"+itoa(tn.userID), map[string]any{"concurrency": concurrency}, http.StatusOK, nil)
}

// holdUserSlot starts a non-streaming request that the fake upstream answers after delay,
// and returns once controlsvc counts it as the user's active request. The returned channel
// yields its status.
func (s *stack) holdUserSlot(t *testing.T, tn tenant, delay time.Duration) <-chan int {
	t.Helper()
	// A one-request credential script (the plugin forwards no X-Fake-Script header): the
	// requests after it get the fake's default answer.
	s.fake.SetCredentialScript(tn.accounts[0].cred, fakeupstream.Script{DelayMS: int(delay.Milliseconds()), Times: 1})
	done := make(chan int, 1)
	go func() {
		req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(`{"model":"gpt-4o","input":"hold"}`))
		req.Header.Set("Authorization", "Bearer "+tn.key)
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, req)
		done <- rec.Code
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var c struct {
			Users []struct {
				UserID int64 `json:"user_id"`
				Active int64 `json:"active"`
			} `json:"users"`
		}
		s.admin.do(t, http.MethodGet, "/concurrency", nil, http.StatusOK, &c)
		for _, u := range c.Users {
			if u.UserID == tn.userID && u.Active == 1 {
				return done
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the holding request never took the user's slot")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// streamThrough sends a streaming Responses request through h behind a real server and
// returns the status, content type and whole body.
func streamThrough(t *testing.T, h http.Handler, key string) (int, string, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/responses",
		strings.NewReader(`{"model":"gpt-4o","input":"count","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// leadingKeepAlives counts the ": keep-alive\n" lines body starts with and returns the rest.
func leadingKeepAlives(body string) (int, string) {
	n := 0
	for strings.HasPrefix(body, ": keep-alive\n") {
		body = body[len(": keep-alive\n"):]
		n++
	}
	return n, body
}

func TestStreamingWaitGetsKeepAlivesThenStream(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t, accountSpec{name: "a", priority: 1})
	s.limitUser(t, tn, 1)
	h, err := plugin(t).newHandler(context.Background(), nextHandler(),
		s.pluginSettings(map[string]any{"pingInterval": "100ms"}), "keepalive-wait")
	if err != nil {
		t.Fatal(err)
	}
	held := s.holdUserSlot(t, tn, 1200*time.Millisecond)

	status, ct, body := streamThrough(t, h, tn.key)
	if status != 200 || ct != "text/event-stream" {
		t.Fatalf("status %d, content type %q", status, ct)
	}
	pings, rest := leadingKeepAlives(body)
	if pings < 3 {
		t.Fatalf("%d keep-alives while waiting about 1s at 100ms, want several; body %q", pings, body)
	}
	if !strings.HasPrefix(rest, "event: response.created\n") || !strings.Contains(rest, "event: response.completed\n") ||
		strings.Contains(rest, "keep-alive") {
		t.Fatalf("after the keep-alives, want the upstream stream alone:\n%s", rest)
	}
	if c := <-held; c != 200 {
		t.Errorf("the holding request got %d", c)
	}
	rows := s.waitUsage(t, tn.keyID, 2)
	for _, r := range rows {
		if r.Status != 200 || r.ErrorClass != "" {
			t.Errorf("usage row %+v, want two clean 200s", r)
		}
	}
	s.waitIdle(t, tn)
}

// The plugin's maxWait is the wait budget controlsvc honours: the wait ends with the user
// timeout refusal, which after keep-alives is a response.failed event under status 200.
func TestStreamingWaitTimeoutAfterKeepAlives(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t, accountSpec{name: "a", priority: 1})
	s.limitUser(t, tn, 1)
	h, err := plugin(t).newHandler(context.Background(), nextHandler(),
		s.pluginSettings(map[string]any{"pingInterval": "100ms", "maxWait": "600ms"}), "keepalive-timeout")
	if err != nil {
		t.Fatal(err)
	}
	held := s.holdUserSlot(t, tn, 2500*time.Millisecond)

	status, ct, body := streamThrough(t, h, tn.key)
	if status != 200 || ct != "text/event-stream" {
		t.Fatalf("status %d, content type %q", status, ct)
	}
	pings, rest := leadingKeepAlives(body)
	if pings < 2 {
		t.Fatalf("%d keep-alives, want some before the refusal; body %q", pings, body)
	}
	if !strings.HasPrefix(rest, "event: response.failed\ndata: ") ||
		!strings.Contains(rest, `"error":{"code":"rate_limit_exceeded","message":"Concurrency limit exceeded for user, please retry later"}`) ||
		strings.Count(rest, "\n\n") != 1 {
		t.Fatalf("after the keep-alives, want one response.failed event:\n%s", rest)
	}
	if c := <-held; c != 200 {
		t.Errorf("the holding request got %d", c)
	}
	s.waitIdle(t, tn)
}

// Requests of one session stick to one account, where without a session the least recently
// used account of equal priority would be next.
func TestSessionHeaderSticksToAccount(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t, accountSpec{name: "a", priority: 1}, accountSpec{name: "b", priority: 1})
	counts := func() map[int64]int {
		out := make(map[int64]int)
		for _, a := range tn.accounts {
			out[a.id] = len(s.upstreamRequests(a.cred))
		}
		return out
	}
	send := func(body, session string) int64 {
		t.Helper()
		before := counts()
		hdr := bearer(tn.key)
		if session != "" {
			hdr["session_id"] = session
		}
		rec := serve(t, s.handler, "/v1/responses", hdr, body)
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		after := counts()
		for id, n := range after {
			if n == before[id]+1 {
				return id
			}
		}
		t.Fatalf("no account got the request: %v → %v", before, after)
		return 0
	}
	first := send(`{"model":"gpt-4o","input":"turn one"}`, "sess-42")
	for i := 2; i <= 4; i++ {
		if got := send(fmt.Sprintf(`{"model":"gpt-4o","input":"turn %d"}`, i), "sess-42"); got != first {
			t.Fatalf("turn %d of the session went to account %d, want its sticky account %d", i, got, first)
		}
	}
	// Another conversation goes to the least recently used account: the other one.
	if got := send(`{"model":"gpt-4o","input":"unrelated"}`, "sess-other"); got == first {
		t.Fatalf("an unrelated session went to the most recently used account %d as well", got)
	}
	s.waitIdle(t, tn)
}
