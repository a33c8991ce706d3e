package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"
)

// The commit point and the deadlines (docs/design.md, "Streams: commit point, endings,
// in-stream errors" and "Timeouts"), end to end: before the first semantic
// output a failing account is replaced unseen; after it, the client gets a terminal error in
// its protocol and never a completion.

const (
	responsesStreamBody = `{"model":"gpt-4o-mini","input":"hi","stream":true}`
	chatStreamBody      = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true}`

	// fiveWords streams as five deltas on every API of the fake upstream.
	fiveWords = "alpha beta gamma delta epsilon"

	// Responses events of the fake before its first delta: response.created,
	// response.in_progress, response.output_item.added, response.content_part.added.
	responsesPreamble = 4

	// silentMs is how long a "silent" account keeps quiet: far beyond the deadlines under
	// test, and the fake stops early when the gateway hangs up.
	silentMs = 20000
)

// wireEvent is one SSE event as the client received it.
type wireEvent struct {
	Name string // the event: line, "" for none
	Data string // the data: line
}

// wireEvents splits an SSE body into its events; comment lines are skipped.
func wireEvents(body string) []wireEvent {
	var out []wireEvent
	for _, block := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n\n") {
		var ev wireEvent
		for _, line := range strings.Split(block, "\n") {
			switch {
			case strings.HasPrefix(line, "event:"):
				ev.Name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				ev.Data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			}
		}
		if ev.Name != "" || ev.Data != "" {
			out = append(out, ev)
		}
	}
	return out
}

func countEvents(evs []wireEvent, name string) int {
	n := 0
	for _, ev := range evs {
		if ev.Name == name {
			n++
		}
	}
	return n
}

// responsesText joins the output_text deltas of a Responses stream.
func responsesText(t *testing.T, evs []wireEvent) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range evs {
		if ev.Name != "response.output_text.delta" {
			continue
		}
		var d struct {
			Delta string `json:"delta"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatalf("delta event %q: %v", ev.Data, err)
		}
		b.WriteString(d.Delta)
	}
	return b.String()
}

// failedEvent decodes the terminal response.failed event of a Responses stream.
func failedEvent(t *testing.T, ev wireEvent) (status, code, message string) {
	t.Helper()
	var f struct {
		Type     string `json:"type"`
		Response struct {
			Status string `json:"status"`
			Error  struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"response"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &f); err != nil || f.Type != "response.failed" {
		t.Fatalf("response.failed event %q: %v", ev.Data, err)
	}
	return f.Response.Status, f.Response.Error.Code, f.Response.Error.Message
}

// postStream sends a streaming request and reads the whole answer, within a bound that fails
// the test instead of hanging when a deadline does not fire.
func postStream(t *testing.T, path, key, body string) (int, http.Header, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", gw.GatewayURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading the stream after %s: %v (got %q)", path, time.Since(start), err, raw)
	}
	return resp.StatusCode, resp.Header, string(raw), time.Since(start)
}

// setGroupDeadlines sets a group's deadline overrides through the admin API (nil = null:
// the plugin's default). Call it before the group's key is first used: admission caches a
// key with its group for up to 2 s.
func setGroupDeadlines(t *testing.T, groupID int64, firstTokenMs, streamIdleMs any) {
	t.Helper()
	g := mustAdmin(t, "PATCH", fmt.Sprintf("/groups/%d", groupID),
		obj{"first_token_timeout_ms": firstTokenMs, "stream_idle_timeout_ms": streamIdleMs})
	if fmt.Sprint(g["first_token_timeout_ms"]) != fmt.Sprint(firstTokenMs) || fmt.Sprint(g["stream_idle_timeout_ms"]) != fmt.Sprint(streamIdleMs) {
		t.Fatalf("group after PATCH = %v, want first token %v, stream idle %v", g, firstTokenMs, streamIdleMs)
	}
}

// wantRequests checks how many requests the fake upstream got with each credential.
func wantRequests(t *testing.T, want map[string]int) {
	t.Helper()
	for cred, n := range want {
		if got := len(upstreamRequestsFor(t, cred)); got != n {
			t.Errorf("account %s got %d upstream requests, want %d", cred, got, n)
		}
	}
}

// wantRecord checks the usage record of the key's only request.
func wantRecord(t *testing.T, keyID int64, status int, errorClass string, attempts int, accountID int64) {
	t.Helper()
	rec := usageFor(t, keyID, 1)[0]
	if num(rec, "status") != int64(status) || rec["error_class"] != errorClass ||
		num(rec, "attempts") != int64(attempts) || num(rec, "account_id") != accountID {
		t.Errorf("usage record = %v, want status %d, error_class %q, %d attempts, account %d",
			rec, status, errorClass, attempts, accountID)
	}
}

// cutAfterCommit is a tenant whose first account sends two text deltas and then drops the
// connection, with a healthy second account that must never be asked.
func cutAfterCommit(t *testing.T, eventsBeforeCut int) (tenant, []int64, string, string) {
	t.Helper()
	cut, spare := unique("sk-cut"), unique("sk-spare")
	programCredential(t, cut, obj{"text": fiveWords, "cut_after_events": eventsBeforeCut})
	programCredential(t, spare, obj{"text": "spliced answer from the spare account"})
	tn, accts := newTenant(t, accountSpec{Credential: cut, Priority: 1}, accountSpec{Credential: spare, Priority: 2})
	return tn, accts, cut, spare
}

func TestStreamCutAfterCommitEndsWithInStreamError(t *testing.T) {
	t.Run("responses", func(t *testing.T) {
		tn, accts, cut, spare := cutAfterCommit(t, responsesPreamble+2)
		code, hdr, body, _ := postStream(t, "/v1/responses", tn.Key, responsesStreamBody)
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d, Content-Type %q: the stream should have been committed", code, hdr.Get("Content-Type"))
		}
		evs := wireEvents(body)
		if got := responsesText(t, evs); got != "alpha beta" {
			t.Errorf("text before the cut = %q, want %q", got, "alpha beta")
		}
		if n := countEvents(evs, "response.completed"); n != 0 {
			t.Fatalf("a cut stream was presented as complete: %s", body)
		}
		last := evs[len(evs)-1]
		if last.Name != "response.failed" {
			t.Fatalf("last event = %+v, want response.failed; body:\n%s", last, body)
		}
		if status, c, msg := failedEvent(t, last); status != "failed" || c != "upstream_error" || msg != "Upstream stream ended unexpectedly" {
			t.Errorf("response.failed = status %q, code %q, message %q", status, c, msg)
		}
		wantRequests(t, map[string]int{cut: 1, spare: 0})
		wantRecord(t, tn.KeyID, 200, "stream_cut", 1, accts[0])
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})

	t.Run("chat completions", func(t *testing.T) {
		// A role-only first chunk, then two content chunks.
		tn, accts, cut, spare := cutAfterCommit(t, 3)
		code, _, body, _ := postStream(t, "/v1/chat/completions", tn.Key, chatStreamBody)
		if code != 200 {
			t.Fatalf("status %d: the stream should have been committed", code)
		}
		evs := wireEvents(body)
		if len(evs) < 2 || !strings.Contains(body, `"alpha"`) {
			t.Fatalf("the content before the cut is missing: %s", body)
		}
		var e struct {
			Error struct {
				Type, Message string
			} `json:"error"`
		}
		last := evs[len(evs)-1]
		if err := json.Unmarshal([]byte(last.Data), &e); err != nil || e.Error.Type != "upstream_error" ||
			e.Error.Message != "Upstream stream ended unexpectedly" {
			t.Fatalf("last frame = %q, want data: {\"error\":…} (%v)", last.Data, err)
		}
		if strings.Contains(body, "[DONE]") || strings.Contains(body, `"finish_reason":"stop"`) {
			t.Errorf("a cut stream was presented as complete: %s", body)
		}
		wantRequests(t, map[string]int{cut: 1, spare: 0})
		wantRecord(t, tn.KeyID, 200, "stream_cut", 1, accts[0])
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})

	t.Run("official SDK, responses: a failed response, never a completed one", func(t *testing.T) {
		tn, accts, cut, spare := cutAfterCommit(t, responsesPreamble+2)
		stream := sdkClient(tn.Key).Responses.NewStreaming(ctxT(t), responses.ResponseNewParams{
			Model: "gpt-4o-mini",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
		})
		var text string
		var failed *responses.Response
		completed := false
		for stream.Next() {
			ev := stream.Current()
			switch ev.Type {
			case "response.output_text.delta":
				text += ev.Delta
			case "response.completed":
				completed = true
			case "response.failed":
				r := ev.AsResponseFailed().Response
				failed = &r
			}
		}
		// The SDK surfaces a failed response as its response.failed event (not as Err).
		if err := stream.Err(); err != nil {
			t.Fatalf("stream.Err() = %v, want the failure as a response.failed event", err)
		}
		if completed || failed == nil {
			t.Fatalf("completed=%v failed=%v: the SDK must see a failure, not a success", completed, failed != nil)
		}
		if failed.Status != responses.ResponseStatusFailed || string(failed.Error.Code) != "upstream_error" ||
			failed.Error.Message != "Upstream stream ended unexpectedly" || text != "alpha beta" {
			t.Errorf("failed response = status %q error %+v, text %q", failed.Status, failed.Error, text)
		}
		wantRequests(t, map[string]int{cut: 1, spare: 0})
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})

	t.Run("official SDK, chat completions: the stream ends in an error", func(t *testing.T) {
		tn, accts, cut, spare := cutAfterCommit(t, 3)
		stream := sdkClient(tn.Key).Chat.Completions.NewStreaming(ctxT(t), openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var text string
		for stream.Next() {
			if ch := stream.Current(); len(ch.Choices) > 0 {
				text += ch.Choices[0].Delta.Content
			}
		}
		err := stream.Err()
		var se *ssestream.StreamError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "Upstream stream ended unexpectedly") {
			t.Fatalf("stream.Err() = %v, want a StreamError carrying the gateway's message", err)
		}
		if text != "alpha beta" {
			t.Errorf("text before the error = %q", text)
		}
		wantRequests(t, map[string]int{cut: 1, spare: 0})
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})
}

func TestSlowFirstTokenFailsOver(t *testing.T) {
	tests := []struct {
		name string
		slow obj // the first account's script
	}{
		// No response headers within the deadline.
		{"headers late", obj{"delay_ms": silentMs}},
		// Headers and response.created at once, then nothing semantic within the deadline.
		{"first output late", obj{"text": "too late", "chunk_delay_ms": silentMs}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			slow, fast := unique("sk-slow"), unique("sk-fast")
			programCredential(t, slow, tt.slow)
			programCredential(t, fast, obj{"text": fiveWords})
			tn, accts := newTenant(t, accountSpec{Credential: slow, Priority: 1}, accountSpec{Credential: fast, Priority: 2})
			setGroupDeadlines(t, tn.GroupID, 1000, nil)

			code, _, body, took := postStream(t, "/v1/responses", tn.Key, responsesStreamBody)
			if code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			evs := wireEvents(body)
			if got := responsesText(t, evs); got != fiveWords {
				t.Errorf("text = %q, want the second account's full answer %q", got, fiveWords)
			}
			// The first account's held response.created never reached the client.
			if countEvents(evs, "response.created") != 1 || countEvents(evs, "response.completed") != 1 ||
				countEvents(evs, "response.failed") != 0 {
				t.Errorf("events: %d created, %d completed, %d failed; want 1, 1, 0:\n%s", countEvents(evs, "response.created"),
					countEvents(evs, "response.completed"), countEvents(evs, "response.failed"), body)
			}
			if took > 10*time.Second {
				t.Errorf("the answer took %s: the 1 s first-token deadline of the group did not fire", took)
			}
			wantRequests(t, map[string]int{slow: 1, fast: 1})
			wantRecord(t, tn.KeyID, 200, "", 2, accts[1])
			assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
		})
	}
}

func TestStallDetected(t *testing.T) {
	t.Run("before the commit point: failover", func(t *testing.T) {
		stall, fast := unique("sk-stall"), unique("sk-fast")
		// response.created and response.in_progress commit nothing; then silence.
		programCredential(t, stall, obj{"text": "never finished", "stall_after_events": 2})
		programCredential(t, fast, obj{"text": fiveWords})
		tn, accts := newTenant(t, accountSpec{Credential: stall, Priority: 1}, accountSpec{Credential: fast, Priority: 2})
		setGroupDeadlines(t, tn.GroupID, nil, 1000)

		code, _, body, took := postStream(t, "/v1/responses", tn.Key, responsesStreamBody)
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		evs := wireEvents(body)
		if got := responsesText(t, evs); got != fiveWords || countEvents(evs, "response.completed") != 1 ||
			countEvents(evs, "response.created") != 1 {
			t.Fatalf("want the second account's complete answer only, got:\n%s", body)
		}
		if took > 10*time.Second {
			t.Errorf("the answer took %s: the 1 s idle deadline of the group did not fire", took)
		}
		wantRequests(t, map[string]int{stall: 1, fast: 1})
		wantRecord(t, tn.KeyID, 200, "", 2, accts[1])
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})

	t.Run("after the commit point: in-stream error", func(t *testing.T) {
		stall, spare := unique("sk-stall"), unique("sk-spare")
		programCredential(t, stall, obj{"text": fiveWords, "stall_after_events": responsesPreamble + 2})
		programCredential(t, spare, obj{"text": "spliced answer from the spare account"})
		tn, accts := newTenant(t, accountSpec{Credential: stall, Priority: 1}, accountSpec{Credential: spare, Priority: 2})
		setGroupDeadlines(t, tn.GroupID, nil, 1000)

		code, _, body, took := postStream(t, "/v1/responses", tn.Key, responsesStreamBody)
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		evs := wireEvents(body)
		if got := responsesText(t, evs); got != "alpha beta" || countEvents(evs, "response.completed") != 0 {
			t.Fatalf("want two deltas and no completion, got:\n%s", body)
		}
		last := evs[len(evs)-1]
		if last.Name != "response.failed" {
			t.Fatalf("last event = %+v, want response.failed", last)
		}
		if _, c, msg := failedEvent(t, last); c != "upstream_error" || msg != "Upstream stream idle timeout" {
			t.Errorf("response.failed error = %q %q", c, msg)
		}
		if took > 10*time.Second {
			t.Errorf("the stream ended after %s: the 1 s idle deadline of the group did not fire", took)
		}
		wantRequests(t, map[string]int{stall: 1, spare: 0})
		wantRecord(t, tn.KeyID, 200, "stream_idle_timeout", 1, accts[0])
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})
}

func TestSilentUpstreamIsNotRetriedOnTheSameAccount(t *testing.T) {
	a, b := unique("sk-silent"), unique("sk-silent")
	for _, c := range []string{a, b} {
		programCredential(t, c, obj{"delay_ms": silentMs})
	}
	tn, accts := newTenant(t, accountSpec{Credential: a, Priority: 1}, accountSpec{Credential: b, Priority: 2})
	setGroupDeadlines(t, tn.GroupID, 1000, nil)

	// Four attempts are allowed (three switches); each silent account is tried once.
	code, _, body, _ := postStream(t, "/v1/responses", tn.Key, responsesStreamBody)
	want := `{"error":{"type":"upstream_error","message":"Upstream timed out, please retry later"}}`
	if code != 504 || !jsonEqual(body, want) {
		t.Fatalf("got %d %s, want 504 %s", code, body, want)
	}
	wantRequests(t, map[string]int{a: 1, b: 1})
	wantRecord(t, tn.KeyID, 504, "first_token_timeout", 2, accts[1])
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)

	// A deadline excludes the account for that request only; it is not paused the way an
	// unreachable account is: once it answers again, it serves the next request.
	programCredential(t, a, obj{"text": "awake again"})
	code, _, body, _ = postStream(t, "/v1/responses", tn.Key, responsesStreamBody)
	if code != 200 || responsesText(t, wireEvents(body)) != "awake again" {
		t.Fatalf("next request: %d %s, want the first account's answer", code, body)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
