package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

// Responses on an anthropic group (docs/design.md, "Group model rules and dispatch"): the
// official OpenAI Go SDK talks to Traefik; the plugin converts to Anthropic Messages for
// the Anthropic accounts on the fake upstream and back.

// anthropicSSE renders Anthropic stream events from (name, data) pairs.
func anthropicSSE(events ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(events); i += 2 {
		b.WriteString("event: " + events[i] + "\ndata: " + events[i+1] + "\n\n")
	}
	return b.String()
}

// Anthropic stream pieces: 10 input tokens besides 5 read from cache and 2 written.
const (
	evStart       = `{"type":"message_start","message":{"id":"msg_e2e","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":5,"cache_creation_input_tokens":2,"output_tokens":1}}}`
	convertedText = "Checking the weather."
)

// toolCallStream answers with text, then a call of get_weather, then usage (7 output).
var toolCallStream = anthropicSSE(
	"message_start", evStart,
	"content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
	"ping", `{"type":"ping"}`,
	"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking "}}`,
	"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"the weather."}}`,
	"content_block_stop", `{"type":"content_block_stop","index":0}`,
	"content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_e2e","name":"get_weather","input":{}}}`,
	"content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}`,
	"content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}`,
	"content_block_stop", `{"type":"content_block_stop","index":1}`,
	"message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":7}}`,
	"message_stop", `{"type":"message_stop"}`,
)

func weatherParams(model string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model: model,
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Weather in Paris?")},
		Tools: []responses.ToolUnionParam{responses.ToolParamOfFunction("get_weather", map[string]any{
			"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"},
		}, false)},
	}
}

// checkConvertedResponse checks what the SDK read: the text, the function call and the
// usage as OpenAI counts it (input including the cache tokens).
func checkConvertedResponse(t *testing.T, r *responses.Response) {
	t.Helper()
	if r.Status != responses.ResponseStatusCompleted || r.OutputText() != convertedText {
		t.Errorf("status %q, text %q", r.Status, r.OutputText())
	}
	var calls []responses.ResponseFunctionToolCall
	for _, item := range r.Output {
		if item.Type == "function_call" {
			calls = append(calls, item.AsFunctionCall())
		}
	}
	if len(calls) != 1 || calls[0].Name != "get_weather" || calls[0].CallID != "toolu_e2e" || calls[0].Arguments != `{"city":"Paris"}` {
		t.Errorf("function calls = %+v", calls)
	}
	u := r.Usage
	if u.InputTokens != 17 || u.InputTokensDetails.CachedTokens != 5 || u.OutputTokens != 7 || u.TotalTokens != 24 {
		t.Errorf("usage = %+v, want input 17 (5 cached), output 7", u)
	}
}

func TestConvertResponsesOnAnthropicGroup(t *testing.T) {
	cred := unique("sk-antconv")
	programCredential(t, cred, obj{"body": toolCallStream})
	tn, accts := anthropicTenant(t, nil, accountSpec{Credential: cred})
	c := sdkClient(tn.Key)

	t.Run("non-stream", func(t *testing.T) {
		r, err := c.Responses.New(ctxT(t), weatherParams("claude-sonnet-4-5"))
		if err != nil {
			t.Fatalf("Responses.New: %v", err)
		}
		checkConvertedResponse(t, r)
	})
	t.Run("stream", func(t *testing.T) {
		stream := c.Responses.NewStreaming(ctxT(t), weatherParams("claude-sonnet-4-5"))
		defer stream.Close()
		var text, args string
		var final *responses.Response
		seq := int64(-1)
		for stream.Next() {
			ev := stream.Current()
			if ev.SequenceNumber <= seq {
				t.Errorf("sequence_number %d after %d", ev.SequenceNumber, seq)
			}
			seq = ev.SequenceNumber
			switch ev.Type {
			case "response.output_text.delta":
				text += ev.Delta
			case "response.function_call_arguments.delta":
				args += ev.Delta
			case "response.completed":
				r := ev.Response
				final = &r
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		if text != convertedText || args != `{"city":"Paris"}` || final == nil {
			t.Fatalf("streamed text %q, arguments %q, completed %v", text, args, final != nil)
		}
		checkConvertedResponse(t, final)
	})

	// Both went to /v1/messages as streamed Messages calls with the account's key, and with
	// the catalogue's maximum output of claude-sonnet-4-5 (64000) as max_tokens: the output
	// limit the reservation counted, since the client named none (docs/design.md, "POST
	// /internal/v1/admit").
	reqs := anthropicRequestsFor(t, cred)
	if len(reqs) != 2 {
		t.Fatalf("upstream got %d requests with the account's key, want 2", len(reqs))
	}
	for _, r := range reqs {
		if r.Path != "/v1/messages" || headerValue(r.Headers, "anthropic-version") == "" || headerValue(r.Headers, "Authorization") != "" ||
			!strings.Contains(r.Body, `"stream":true`) || !strings.Contains(r.Body, `"name":"get_weather"`) || upstreamModelOf(t, r) != "claude-sonnet-4-5" ||
			!strings.Contains(r.Body, `"max_tokens":64000`) {
			t.Errorf("upstream request = %s %v %s", r.Path, r.Headers, r.Body)
		}
	}
	// Recorded the Anthropic way: input exclusive of the cache tokens, priced.
	for _, rec := range usageFor(t, tn.KeyID, 2) {
		if num(rec, "input_tokens") != 10 || num(rec, "cache_read_tokens") != 5 || num(rec, "cache_creation_tokens") != 2 ||
			num(rec, "output_tokens") != 7 || num(rec, "status") != 200 || rec["path"] != "/v1/responses" ||
			rec["model"] != "claude-sonnet-4-5" || rec["priced"] != true {
			t.Errorf("usage record = %v", rec)
		}
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// Failover between two Anthropic accounts on the converted path: an HTTP 529, and an
// overloaded_error event in the stream before any output (after message_start announced
// the input). The ledger shows both attempts and bills the answering one only.
func TestConvertFailoverBetweenAnthropicAccounts(t *testing.T) {
	tests := []struct {
		name       string
		failing    obj
		stream     bool
		wantStatus int   // of the first attempt in the ledger
		wantInput  int64 // tokens of the first attempt
		failures   int   // failed attempts on the first account: a 500 is retried there once
	}{
		{"529 then stream", obj{"status": 529}, true, 529, 0, 1},
		{"500 then non-stream", obj{"status": 500}, false, 500, 0, 2},
		{"error event before output", obj{"body": anthropicSSE("message_start", evStart,
			"error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)}, false, 529, 10, 1}, // the implied status (in_stream_error)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failing, healthy := unique("sk-antfail"), unique("sk-antok")
			programCredential(t, failing, tt.failing)
			programCredential(t, healthy, obj{"body": toolCallStream})
			tn, accts := anthropicTenant(t, nil, accountSpec{Credential: failing, Priority: 1}, accountSpec{Credential: healthy, Priority: 2})
			c := sdkClient(tn.Key)
			if tt.stream {
				stream := c.Responses.NewStreaming(ctxT(t), weatherParams("claude-sonnet-4-5"))
				var final *responses.Response
				for stream.Next() {
					if ev := stream.Current(); ev.Type == "response.completed" {
						r := ev.Response
						final = &r
					}
				}
				if err := stream.Err(); err != nil || final == nil {
					t.Fatalf("stream: %v, completed %v", err, final != nil)
				}
				stream.Close()
				checkConvertedResponse(t, final)
			} else {
				r, err := c.Responses.New(ctxT(t), weatherParams("claude-sonnet-4-5"))
				if err != nil {
					t.Fatalf("request failed instead of failing over: %v", err)
				}
				checkConvertedResponse(t, r)
			}

			rec := usageFor(t, tn.KeyID, 1)[0]
			if num(rec, "attempts") != int64(tt.failures+1) || num(rec, "account_id") != accts[1] || num(rec, "status") != 200 || num(rec, "input_tokens") != 10 {
				t.Errorf("usage record = %v", rec)
			}
			requestID, _ := rec["request_id"].(string)
			detail := mustAdmin(t, "GET", "/usage/"+requestID, nil)
			attempts, _ := detail["attempts"].([]any)
			if len(attempts) != tt.failures+1 {
				t.Fatalf("attempts = %v, want %d", detail["attempts"], tt.failures+1)
			}
			first, second := attempts[0].(obj), attempts[tt.failures].(obj)
			if num(first, "account_id") != accts[0] || num(first, "status") != int64(tt.wantStatus) || first["billed"] != false ||
				num(first, "input_tokens") != tt.wantInput {
				t.Errorf("first attempt = %v", first)
			}
			if num(second, "account_id") != accts[1] || num(second, "status") != 200 || second["billed"] != true ||
				num(second, "output_tokens") != 7 || second["cost_usd"] == 0.0 || second["cost_usd"] != rec["cost_usd"] {
				t.Errorf("second attempt = %v (record cost %v)", second, rec["cost_usd"])
			}
			assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
		})
	}
}

// Errors on the converted path are {"error":{"code","message"}} (docs/design.md, "Group
// model rules and dispatch").
func TestConvertErrorsOnAnthropicGroup(t *testing.T) {
	t.Run("every account failing", func(t *testing.T) {
		a, b := unique("sk-ant529a"), unique("sk-ant529b")
		programCredential(t, a, obj{"status": 529})
		programCredential(t, b, obj{"status": 529})
		tn, accts := anthropicTenant(t, nil, accountSpec{Credential: a, Priority: 1}, accountSpec{Credential: b, Priority: 2})
		code, _, body := post(t, "/v1/responses", tn.Key, `{"model":"claude-sonnet-4-5","input":"hi"}`, nil)
		// The code is the upstream's error class.
		if want := `{"error":{"code":"overloaded_error","message":"All available accounts exhausted"}}`; code != 529 || !jsonEqual(body, want) {
			t.Errorf("got %d %s, want 529 %s", code, body, want)
		}
		if rec := usageFor(t, tn.KeyID, 1)[0]; num(rec, "attempts") != 2 || num(rec, "status") != 529 {
			t.Errorf("usage record = %v", rec)
		}
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})

	t.Run("no account at all", func(t *testing.T) {
		tn, _ := anthropicTenant(t, nil)
		for _, path := range []string{"/v1/responses", "/openai/v1/responses"} {
			code, _, body := post(t, path, tn.Key, `{"model":"claude-sonnet-4-5","input":"hi","stream":true}`, nil)
			if want := `{"error":{"code":"api_error","message":"No available accounts"}}`; code != http.StatusServiceUnavailable || !jsonEqual(body, want) {
				t.Errorf("%s: got %d %s, want 503 %s", path, code, body, want)
			}
		}
		assertNoSlotsHeld(t, []int64{tn.UserID}, nil)
	})

	t.Run("group rules", func(t *testing.T) {
		cred := unique("sk-antconvrules")
		programCredential(t, cred, obj{"body": toolCallStream})
		tn, accts := anthropicTenant(t, obj{"model_mapping": obj{"sonnet": "claude-sonnet-4-5"}, "restrict_models": true},
			accountSpec{Credential: cred})
		tests := []struct {
			name, path, body string
			wantStatus       int
			want             string
		}{
			{"restricted model", "/v1/responses", `{"model":"claude-opus-4-1","input":"hi"}`, http.StatusServiceUnavailable,
				`{"error":{"code":"api_error","message":"The requested model is not available for this API key"}}`},
			{"restricted model on the alias", "/openai/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`, http.StatusServiceUnavailable,
				`{"error":{"code":"api_error","message":"The requested model is not available for this API key"}}`},
			{"body that cannot be converted", "/v1/responses", `{"model":"sonnet","input":"hi","reasoning":{"effort":"extreme"}}`, http.StatusBadRequest,
				`{"error":{"code":"invalid_request_error","message":"reasoning.effort must be one of none, minimal, low, medium, high, xhigh"}}`},
		}
		for _, tt := range tests {
			code, _, body := post(t, tt.path, tn.Key, tt.body, nil)
			if code != tt.wantStatus || !jsonEqual(body, tt.want) {
				t.Errorf("%s: got %d %s, want %d %s", tt.name, code, body, tt.wantStatus, tt.want)
			}
		}
		// The mapped model is served by conversion, sent as the mapping names it.
		r, err := sdkClient(tn.Key).Responses.New(ctxT(t), weatherParams("sonnet"))
		if err != nil {
			t.Fatalf("Responses.New: %v", err)
		}
		checkConvertedResponse(t, r)
		if reqs := anthropicRequestsFor(t, cred); len(reqs) != 1 || upstreamModelOf(t, reqs[0]) != "claude-sonnet-4-5" {
			t.Errorf("upstream requests = %v, want one for claude-sonnet-4-5", reqs)
		}
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})
}
