package yaegi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/fakeupstream"
)

// Responses requests on an anthropic group, served by conversion (docs/design.md, "Group
// model rules and dispatch"), through the plugin as Yaegi interprets it, the real
// controlsvc and the fake upstream speaking Anthropic.

// anthropicToolStream is an Anthropic Messages stream with text, a tool call and usage
// (input 10 exclusive of 5 cache reads and 2 cache writes, output 7).
const anthropicToolStream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":2,\"output_tokens\":1}}}\n\n" +
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
	"event: ping\ndata: {\"type\":\"ping\"}\n\n" +
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me look.\"}}\n\n" +
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"get_weather\",\"input\":{}}}\n\n" +
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n" +
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n" +
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n" +
	"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n" +
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

const convertedRequest = `{"model":"claude-sonnet-4-5","input":"weather in Paris?","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]`

func TestConvertedThroughPlugin(t *testing.T) {
	s := getStack(t)
	tn := s.seedOn(t, "anthropic",
		// Always 529: one no longer pauses the account (docs/design.md, "Health model"),
		// two stay below the breaker's threshold, so both requests meet it first and fail
		// over.
		accountSpec{name: "overloaded", priority: 1, script: &fakeupstream.Script{Status: 529}},
		accountSpec{name: "answering", priority: 2, script: &fakeupstream.Script{Body: fakeupstream.RawBody(anthropicToolStream)}},
	)
	overloaded, answering := tn.accounts[0], tn.accounts[1]

	t.Run("stream, after failing over from a 529", func(t *testing.T) {
		rec := serve(t, s.handler, "/v1/responses", bearer(tn.key), convertedRequest+`,"stream":true}`)
		body := rec.Body.String()
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d: %s", rec.Code, body)
		}
		if !strings.HasPrefix(body, "event: response.created\n") || strings.Count(body, "event: response.created\n") != 1 ||
			!strings.Contains(body, "event: response.in_progress\n") || !strings.Contains(body, `"delta":"Let me look."`) ||
			!strings.Contains(body, `"call_id":"toolu_9"`) || !strings.Contains(body, `"arguments":"{\"city\":\"Paris\"}"`) {
			t.Fatalf("converted stream:\n%s", body)
		}
		last := body[strings.LastIndex(strings.TrimSuffix(body, "\n\n"), "\n\n")+2:]
		if !strings.HasPrefix(last, "event: response.completed\n") ||
			!strings.Contains(last, `"input_tokens":17,"input_tokens_details":{"cached_tokens":5`) || !strings.Contains(last, `"output_tokens":7`) {
			t.Errorf("last event %s", last)
		}
	})

	t.Run("non-stream", func(t *testing.T) {
		rec := serve(t, s.handler, "/openai/v1/responses", bearer(tn.key), convertedRequest+`}`)
		var resp struct {
			Status string `json:"status"`
			Output []struct {
				Type    string `json:"type"`
				CallID  string `json:"call_id"`
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"output"`
		}
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &resp) != nil || resp.Status != "completed" || len(resp.Output) != 2 ||
			resp.Output[0].Content[0].Text != "Let me look." || resp.Output[1].CallID != "toolu_9" {
			t.Fatalf("got %d %s", rec.Code, rec.Body)
		}
	})

	// Each request met the overloaded account first; every request upstream was a
	// streamed Messages call with the account's credentials.
	if n := len(s.upstreamRequests(overloaded.cred)); n != 2 {
		t.Errorf("the overloaded account got %d requests, want 2", n)
	}
	reqs := s.upstreamRequests(answering.cred)
	if len(reqs) != 2 {
		t.Fatalf("the answering account got %d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if r.Path != "/v1/messages" || r.Headers.Get("Anthropic-Version") == "" || r.Headers.Get("Authorization") != "" ||
			!strings.Contains(r.Body, `"stream":true`) {
			t.Errorf("upstream request %s %v %s", r.Path, r.Headers, r.Body)
		}
	}
	rows := s.waitUsage(t, tn.keyID, 2)
	attempts := 0
	for _, r := range rows {
		attempts += r.Attempts
		if r.Status != 200 || r.AccountID != answering.id || r.Path != "/v1/responses" || r.Model != "claude-sonnet-4-5" ||
			r.InputTokens != 10 || r.CacheReadTokens != 5 || r.CacheCreationTokens != 2 || r.OutputTokens != 7 {
			t.Errorf("usage row %+v", r)
		}
	}
	if attempts != 4 {
		t.Errorf("%d attempts in all, want 4 (each request failed over once)", attempts)
	}
	s.waitIdle(t, tn)
}
