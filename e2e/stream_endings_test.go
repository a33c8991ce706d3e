package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

// Stream endings as the providers mean them (docs/design.md, "Streams: commit point, endings,
// in-stream errors"), through the real Traefik: an
// error event before the first semantic output fails over unseen and marks the attempt with
// the status its type implies; a Chat stream is complete after finish_reason and usage
// without [DONE]; the usage chunk the gateway asked for never reaches a client that did not.

const (
	endingsAnthStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_failing\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n"
	endingsOverload  = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
	endingsRespFail  = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_failing\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[]}}\n\n" +
		"event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{\"id\":\"resp_failing\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[]}}\n\n" +
		"event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_failing\",\"object\":\"response\",\"status\":\"failed\",\"output\":[],\"error\":{\"code\":\"server_error\",\"message\":\"The server had an error while processing your request\"}}}\n\n"

	endingsChatRole  = `data: {"id":"chatcmpl-e","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}` + "\n\n"
	endingsChatText  = `data: {"id":"chatcmpl-e","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"complete without DONE"},"finish_reason":null}],"usage":null}` + "\n\n"
	endingsChatStop  = `data: {"id":"chatcmpl-e","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}` + "\n\n"
	endingsChatUsage = `data: {"id":"chatcmpl-e","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":21,"completion_tokens":4,"total_tokens":25}}` + "\n\n"
)

// firstAttempt returns the first attempt of the usage record's detail.
func firstAttempt(t *testing.T, rec obj) obj {
	t.Helper()
	requestID, _ := rec["request_id"].(string)
	detail := mustAdmin(t, "GET", "/usage/"+requestID, nil)
	attempts, _ := detail["attempts"].([]any)
	if len(attempts) == 0 {
		t.Fatalf("usage detail has no attempts: %v", detail)
	}
	return attempts[0].(obj)
}

func TestAnthropicOverloadedAfterMessageStartFailsOver(t *testing.T) {
	failing, healthy := unique("sk-ant-overloaded"), unique("sk-ant-healthy")
	programCredential(t, failing, obj{"body": endingsAnthStart + "event: ping\ndata: {\"type\":\"ping\"}\n\n" + endingsOverload})
	programCredential(t, healthy, obj{"text": anthropicText, "usage": anthropicUsage})
	tn, accts := anthropicTenant(t, nil, accountSpec{Credential: failing, Priority: 1}, accountSpec{Credential: healthy, Priority: 2})

	code, _, body, _ := postStream(t, "/v1/messages", tn.Key,
		`{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"hi"}],"stream":true}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	evs := wireEvents(body)
	// Nothing of the first account's attempt reached the client: not its held message_start,
	// not its error.
	if countEvents(evs, "message_start") != 1 || countEvents(evs, "message_stop") != 1 || countEvents(evs, "error") != 0 ||
		strings.Contains(body, "msg_failing") || strings.Contains(body, "Overloaded") {
		t.Fatalf("want the healthy account's clean stream only, got:\n%s", body)
	}
	var text strings.Builder
	for _, ev := range evs {
		var d struct {
			Delta struct {
				Text string `json:"text"`
			} `json:"delta"`
		}
		if ev.Name == "content_block_delta" && json.Unmarshal([]byte(ev.Data), &d) == nil {
			text.WriteString(d.Delta.Text)
		}
	}
	if text.String() != anthropicText {
		t.Errorf("text = %q, want %q", text.String(), anthropicText)
	}
	if n, m := len(anthropicRequestsFor(t, failing)), len(anthropicRequestsFor(t, healthy)); n != 1 || m != 1 {
		t.Errorf("upstream requests: failing %d, healthy %d; want 1 each", n, m)
	}
	wantRecord(t, tn.KeyID, 200, "", 2, accts[1])
	if a := firstAttempt(t, usageFor(t, tn.KeyID, 1)[0]); num(a, "account_id") != accts[0] || num(a, "status") != 529 ||
		a["error_class"] != "in_stream_error" || a["billed"] != false {
		t.Errorf("first attempt = %v, want account %d, status 529, in_stream_error, not billed", a, accts[0])
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestEarlyResponseFailedFailsOver(t *testing.T) {
	failing, healthy := unique("sk-resp-failed"), unique("sk-resp-healthy")
	programCredential(t, failing, obj{"body": endingsRespFail})
	programCredential(t, healthy, obj{"text": fiveWords})
	tn, accts := newTenant(t, accountSpec{Credential: failing, Priority: 1}, accountSpec{Credential: healthy, Priority: 2})

	code, _, body, _ := postStream(t, "/v1/responses", tn.Key, responsesStreamBody)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	evs := wireEvents(body)
	if got := responsesText(t, evs); got != fiveWords {
		t.Errorf("text = %q, want the healthy account's %q", got, fiveWords)
	}
	if countEvents(evs, "response.created") != 1 || countEvents(evs, "response.completed") != 1 ||
		countEvents(evs, "response.failed") != 0 || strings.Contains(body, "resp_failing") {
		t.Fatalf("want the healthy account's clean stream only, got:\n%s", body)
	}
	wantRequests(t, map[string]int{failing: 1, healthy: 1})
	wantRecord(t, tn.KeyID, 200, "", 2, accts[1])
	if a := firstAttempt(t, usageFor(t, tn.KeyID, 1)[0]); num(a, "status") != 500 || a["error_class"] != "in_stream_error" {
		t.Errorf("first attempt = %v, want status 500, in_stream_error", a)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestChatStreamWithoutDoneIsComplete(t *testing.T) {
	cred, spare := unique("sk-no-done"), unique("sk-spare")
	programCredential(t, cred, obj{"body": endingsChatRole + endingsChatText + endingsChatStop + endingsChatUsage})
	programCredential(t, spare, obj{"text": "must not be asked"})
	tn, accts := newTenant(t, accountSpec{Credential: cred, Priority: 1}, accountSpec{Credential: spare, Priority: 2})

	// The official SDK reads it as a complete answer: no error at the end.
	stream := sdkClient(tn.Key).Chat.Completions.NewStreaming(ctxT(t), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var text, finish string
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			text += ch.Delta.Content
			if ch.FinishReason != "" {
				finish = ch.FinishReason
			}
		}
	}
	if err := stream.Err(); err != nil || text != "complete without DONE" || finish != "stop" {
		t.Fatalf("stream: err %v, text %q, finish %q; want a clean end", err, text, finish)
	}
	wantRequests(t, map[string]int{cred: 1, spare: 0})
	wantRecord(t, tn.KeyID, 200, "", 1, accts[0])
	rec := usageFor(t, tn.KeyID, 1)[0]
	if num(rec, "input_tokens") != 21 || num(rec, "output_tokens") != 4 || rec["usage_source"] != "upstream" {
		t.Errorf("usage record = %v, want the usage chunk's 21 in, 4 out, from the upstream", rec)
	}

	// And on the wire: the client's stream ends with the finish chunk, no error frame after it.
	code, _, body, _ := postStream(t, "/v1/chat/completions", tn.Key, chatStreamBody)
	if want := endingsChatRole + endingsChatText + endingsChatStop; code != 200 || body != want {
		t.Errorf("got %d %q,\nwant %q", code, body, want)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestForcedUsageChunkOnlyForClientsThatAsked(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantChunk bool
	}{
		{"not asked", chatStreamBody, false},
		{"asked", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred := unique("sk-usage-chunk")
			programCredential(t, cred, obj{"text": fiveWords, "usage": obj{"input_tokens": 30, "output_tokens": 5}})
			tn, accts := newTenant(t, accountSpec{Credential: cred, Priority: 1})

			code, _, body, _ := postStream(t, "/v1/chat/completions", tn.Key, tt.body)
			if code != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") || !strings.Contains(body, `"finish_reason":"stop"`) {
				t.Fatalf("got %d:\n%s", code, body)
			}
			if got := strings.Contains(body, `"choices":[]`); got != tt.wantChunk {
				t.Errorf("usage chunk in the client's stream: %v, want %v:\n%s", got, tt.wantChunk, body)
			}
			// The gateway asked the upstream for it either way, and billed from it.
			reqs := upstreamRequestsFor(t, cred)
			if len(reqs) != 1 || !strings.Contains(reqs[0].Body, `"include_usage":true`) {
				t.Errorf("upstream requests %v, want one with include_usage", reqs)
			}
			wantRecord(t, tn.KeyID, 200, "", 1, accts[0])
			if rec := usageFor(t, tn.KeyID, 1)[0]; num(rec, "input_tokens") != 30 || num(rec, "output_tokens") != 5 ||
				rec["usage_source"] != "upstream" {
				t.Errorf("usage record = %v, want 30 in, 5 out from the upstream", rec)
			}
			assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
		})
	}
}
