package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/poolgate/poolgate/fakeupstream"
)

// Wait queues, keep-alives and sticky sessions (docs/design.md, "Redis", "Sticky
// sessions"), end to end. TestMain gives controlsvc a user wait timeout of
// queueUserWaitTimeout and the plugin a ping interval of queuePingInterval, so that waits
// and pings show within seconds.

const (
	msgQueueFull       = "Too many pending requests, please retry later"
	msgUserConcurrency = "Concurrency limit exceeded for user, please retry later"
	// queueDefaultMaxWaiters is controlsvc's default user queue (docs/design.md, "Redis").
	queueDefaultMaxWaiters = 20
)

// queueTenant is a tenant whose user may run `concurrency` requests at a time. The key has
// not been used yet, so no controlsvc cache holds the old limit.
func queueTenant(t *testing.T, concurrency int, accounts ...accountSpec) (tenant, []int64) {
	t.Helper()
	tn, accts := newTenant(t, accounts...)
	mustAdmin(t, "PATCH", fmt.Sprintf("/users/%d", tn.UserID), obj{"concurrency": concurrency})
	return tn, accts
}

// queueResult is what a client got.
type queueResult struct {
	status int
	header http.Header
	body   string
	err    error
}

// queuePost sends one request without failing the test, so that goroutines may use it.
func queuePost(ctx context.Context, path, key, body string, hdr map[string]string) queueResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.GatewayURL+path, strings.NewReader(body))
	if err != nil {
		return queueResult{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return queueResult{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return queueResult{status: resp.StatusCode, header: resp.Header, body: string(raw), err: err}
}

// queueHold starts a request the upstream answers after delay and returns once it holds
// the user's slot; the channel yields its result. The delay is a one-request script of the
// tenant's first account (the plugin forwards no X-Fake-Script header): the requests after
// it get the fake's default answer.
func queueHold(t *testing.T, tn tenant, delay time.Duration) <-chan queueResult {
	t.Helper()
	programCredential(t, tn.Creds[0], obj{"delay_ms": delay.Milliseconds(), "times": 1})
	done := make(chan queueResult, 1)
	go func() {
		done <- queuePost(context.Background(), "/v1/responses", tn.Key, responsesBody, nil)
	}()
	waitActive(t, "users", "user_id", tn.UserID, 1)
	return done
}

// waitWaiting waits until the user has n requests waiting in its queue.
func waitWaiting(t *testing.T, userID int64, n float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		items, _ := mustAdmin(t, "GET", "/concurrency", nil)["users"].([]any)
		for _, it := range items {
			o := it.(obj)
			if int64(o["user_id"].(float64)) == userID && o["waiting"].(float64) >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("user %d never had %v waiting requests", userID, n)
}

// wantOK fails unless r is a 200.
func wantOK(t *testing.T, what string, r queueResult) {
	t.Helper()
	if r.err != nil || r.status != 200 {
		t.Errorf("%s: status %d, err %v, body %.300s", what, r.status, r.err, r.body)
	}
}

// wantRateLimit fails unless r is the 429 rate_limit_error with msg.
func wantRateLimit(t *testing.T, what string, r queueResult, msg string) {
	t.Helper()
	want := fmt.Sprintf(`{"error":{"type":"rate_limit_error","message":%q}}`, msg)
	if r.err != nil || r.status != 429 || !jsonEqual(r.body, want) {
		t.Errorf("%s: status %d, err %v, body %s; want 429 %s", what, r.status, r.err, r.body, want)
	}
}

// A request over the user's concurrency waits for the slot and then runs.
func TestQueueThenSuccess(t *testing.T) {
	tn, accts := queueTenant(t, 1, accountSpec{Credential: unique("sk-q")})
	held := queueHold(t, tn, 1500*time.Millisecond)
	began := time.Now()
	second := queuePost(context.Background(), "/v1/responses", tn.Key, responsesBody, nil)
	wantOK(t, "the waiting request", second)
	if el := time.Since(began); el < time.Second {
		t.Errorf("the second request answered after %s: it did not wait for the first", el)
	}
	wantOK(t, "the holding request", <-held)
	usageFor(t, tn.KeyID, 2)
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// With the user's queue full (20 waiters), the next request is refused at once.
func TestQueueFull(t *testing.T) {
	tn, accts := queueTenant(t, 1, accountSpec{Credential: unique("sk-q")})
	held := queueHold(t, tn, 2*time.Second)
	waiters := make(chan queueResult, queueDefaultMaxWaiters)
	var wg sync.WaitGroup
	for i := 0; i < queueDefaultMaxWaiters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			waiters <- queuePost(context.Background(), "/v1/responses", tn.Key, responsesBody, nil)
		}()
	}
	waitWaiting(t, tn.UserID, queueDefaultMaxWaiters)
	began := time.Now()
	full := queuePost(context.Background(), "/v1/responses", tn.Key, responsesBody, nil)
	wantRateLimit(t, "the request past the full queue", full, msgQueueFull)
	if el := time.Since(began); el > time.Second {
		t.Errorf("the refusal took %s, want it at once", el)
	}
	wantOK(t, "the holding request", <-held)
	wg.Wait()
	close(waiters)
	served := 0
	for r := range waiters {
		// A waiter runs once the ones before it are done, or times out after 3 s.
		if r.status == 200 {
			served++
			continue
		}
		wantRateLimit(t, "a waiter that was not served", r, msgUserConcurrency)
	}
	if served == 0 {
		t.Errorf("no waiter was served after the holding request ended")
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// A waiter whose slot does not free within the user wait timeout gets the 429.
func TestQueueWaitTimeout(t *testing.T) {
	tn, accts := queueTenant(t, 1, accountSpec{Credential: unique("sk-q")})
	held := queueHold(t, tn, queueUserWaitTimeout+2*time.Second)
	began := time.Now()
	r := queuePost(context.Background(), "/v1/responses", tn.Key, responsesBody, nil)
	el := time.Since(began)
	wantRateLimit(t, "the waiting request", r, msgUserConcurrency)
	if el < queueUserWaitTimeout-500*time.Millisecond || el > queueUserWaitTimeout+3*time.Second {
		t.Errorf("refused after %s, want about the user wait timeout %s", el, queueUserWaitTimeout)
	}
	wantOK(t, "the holding request", <-held)
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// teeBody copies what the SDK reads into buf.
type teeBody struct {
	io.Reader
	io.Closer
}

// A streaming request that waits gets keep-alive comments, then the normal stream, which the
// official OpenAI Go SDK reads without error. The raw bytes show the comment lines with no
// blank line after them.
func TestQueueKeepAliveDuringStreamingWaitWithSDK(t *testing.T) {
	tn, accts := queueTenant(t, 1, accountSpec{Credential: unique("sk-q")})
	held := queueHold(t, tn, 1500*time.Millisecond) // the waiting stream gets the fake's default answer

	var mu sync.Mutex
	var raw bytes.Buffer
	var status int
	var contentType string
	tee := func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(req)
		if err == nil {
			mu.Lock()
			status, contentType = resp.StatusCode, resp.Header.Get("Content-Type")
			mu.Unlock()
			resp.Body = teeBody{Reader: io.TeeReader(resp.Body, lockedWriter{&mu, &raw}), Closer: resp.Body}
		}
		return resp, err
	}
	c := openai.NewClient(option.WithBaseURL(gw.GatewayURL+"/v1/"), option.WithAPIKey(tn.Key),
		option.WithMaxRetries(0), option.WithMiddleware(tee))
	stream := c.Responses.NewStreaming(ctxT(t), responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say it")},
	})
	var text string
	completed := false
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "response.output_text.delta":
			text += ev.Delta
		case "response.completed":
			completed = true
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("the SDK failed on the stream: %v", err)
	}
	if !completed || text != fakeupstream.DefaultText {
		t.Errorf("completed=%v text=%q", completed, text)
	}
	wantOK(t, "the holding request", <-held)

	mu.Lock()
	body := raw.String()
	mu.Unlock()
	if status != 200 || contentType != "text/event-stream" {
		t.Errorf("status %d, content type %q", status, contentType)
	}
	pings, rest := leadingKeepAlives(body)
	// About 1.5 s of waiting at a 300 ms ping interval.
	if pings < 2 {
		t.Errorf("%d keep-alive comments before the stream, want several; body starts %.200q", pings, body)
	}
	if strings.Contains(body, ": keep-alive\n\n") {
		t.Errorf("a keep-alive comment is followed by a blank line (an empty event): %.300q", body)
	}
	if !strings.HasPrefix(rest, "event: response.created\n") {
		t.Errorf("after the keep-alives, want the upstream stream; got %.200q", rest)
	}
	rec := usageFor(t, tn.KeyID, 2)
	for _, r := range rec {
		if num(r, "status") != 200 {
			t.Errorf("usage record %v, want 200", r)
		}
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// leadingKeepAlives counts the ": keep-alive\n" lines body starts with and returns the rest.
func leadingKeepAlives(body string) (int, string) {
	n := 0
	for strings.HasPrefix(body, ": keep-alive\n") {
		body = strings.TrimPrefix(body, ": keep-alive\n")
		n++
	}
	return n, body
}

// A streaming request whose wait times out after keep-alives committed 200 gets the refusal
// as a terminal response.failed event, not as a JSON body.
func TestQueueStreamingWaitTimeoutAfterKeepAlives(t *testing.T) {
	tn, accts := queueTenant(t, 1, accountSpec{Credential: unique("sk-q")})
	held := queueHold(t, tn, queueUserWaitTimeout+2*time.Second)
	r := queuePost(context.Background(), "/v1/responses", tn.Key, `{"model":"gpt-4o-mini","input":"hi","stream":true}`, nil)
	if r.err != nil || r.status != 200 || r.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, err %v, content type %q; want 200 text/event-stream", r.status, r.err, r.header.Get("Content-Type"))
	}
	pings, rest := leadingKeepAlives(r.body)
	if pings < 2 {
		t.Errorf("%d keep-alives during a %s wait at %s", pings, queueUserWaitTimeout, queuePingInterval)
	}
	want := `"error":{"code":"rate_limit_exceeded","message":"` + msgUserConcurrency + `"}`
	if !strings.HasPrefix(rest, "event: response.failed\ndata: {\"type\":\"response.failed\"") ||
		!strings.Contains(rest, want) || !strings.Contains(rest, `"status":"failed"`) ||
		strings.Count(rest, "\n\n") != 1 || !strings.HasSuffix(rest, "\n\n") {
		t.Errorf("after the keep-alives, want one response.failed event carrying %s; got %q", want, rest)
	}
	wantOK(t, "the holding request", <-held)
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// servedBy returns the credential of the one account whose request count grew since before.
func servedBy(t *testing.T, creds []string, before map[string]int) string {
	t.Helper()
	got := ""
	for _, c := range creds {
		if n := len(upstreamRequestsFor(t, c)); n == before[c]+1 {
			if got != "" {
				t.Fatalf("both %s and %s got a request", got, c)
			}
			got = c
		} else if n != before[c] {
			t.Fatalf("account %s got %d requests, had %d", c, n, before[c])
		}
	}
	if got == "" {
		t.Fatal("no account got the request")
	}
	return got
}

func requestCounts(t *testing.T, creds []string) map[string]int {
	t.Helper()
	out := make(map[string]int, len(creds))
	for _, c := range creds {
		out[c] = len(upstreamRequestsFor(t, c))
	}
	return out
}

// sendInSession sends a request of session (its session_id header) with its own text and
// returns the credential of the account that served it.
func sendInSession(t *testing.T, tn tenant, creds []string, session, text string) string {
	t.Helper()
	before := requestCounts(t, creds)
	hdr := map[string]string{}
	if session != "" {
		hdr["session_id"] = session
	}
	code, _, body := post(t, "/v1/responses", tn.Key, fmt.Sprintf(`{"model":"gpt-4o-mini","input":%q}`, text), hdr)
	if code != 200 {
		t.Fatalf("request %q of session %q: %d %s", text, session, code, body)
	}
	return servedBy(t, creds, before)
}

// The turns of one session stay on one account while others of equal priority exist, where
// a request of another conversation goes to the least recently used account.
func TestStickySessionHit(t *testing.T) {
	creds := []string{unique("sk-st"), unique("sk-st"), unique("sk-st")}
	tn, accts := newTenant(t, accountSpec{Credential: creds[0]}, accountSpec{Credential: creds[1]}, accountSpec{Credential: creds[2]})
	session := unique("sess")
	first := sendInSession(t, tn, creds, session, "turn 1")
	for i := 2; i <= 5; i++ {
		if got := sendInSession(t, tn, creds, session, fmt.Sprintf("turn %d", i)); got != first {
			t.Fatalf("turn %d went to %s, want the session's account %s", i, got, first)
		}
	}
	if other := sendInSession(t, tn, creds, unique("sess"), "another conversation"); other == first {
		t.Errorf("another conversation went to %s, the most recently used account, too", other)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// A 429 on the sticky account moves the session: that request fails over, and the next one
// of the session goes straight to the other account.
func TestStickyEscapeWhenRateLimited(t *testing.T) {
	creds := []string{unique("sk-st"), unique("sk-st")}
	tn, accts := newTenant(t, accountSpec{Credential: creds[0]}, accountSpec{Credential: creds[1]})
	session := unique("sess")
	sticky := sendInSession(t, tn, creds, session, "turn 1")
	other := creds[0]
	if sticky == creds[0] {
		other = creds[1]
	}
	programCredential(t, sticky, obj{"status": 429, "headers": obj{"Retry-After": "60"}})

	before := requestCounts(t, creds)
	code, _, body := post(t, "/v1/responses", tn.Key, `{"model":"gpt-4o-mini","input":"turn 2"}`, map[string]string{"session_id": session})
	if code != 200 {
		t.Fatalf("turn 2: %d %s", code, body)
	}
	after := requestCounts(t, creds)
	if after[sticky] != before[sticky]+1 || after[other] != before[other]+1 {
		t.Fatalf("turn 2: requests %v → %v, want one 429 on the sticky account, then the other", before, after)
	}
	for i := 3; i <= 4; i++ {
		if got := sendInSession(t, tn, creds, session, fmt.Sprintf("turn %d", i)); got != other {
			t.Fatalf("turn %d went to %s, want %s: the session must leave its rate-limited account", i, got, other)
		}
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
