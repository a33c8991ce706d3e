package convert

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// The official OpenAI Go SDK reads every converted golden stream and non-stream object:
// its streaming client decodes each event, and its strict accumulator (which checks the
// fields it consumes: indices, item ids, call ids, texts) rebuilds the response.
func TestConvertedStreamsReadByOpenAISDK(t *testing.T) {
	t.Parallel()
	for _, tc := range convStreamCases {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			input, err := os.ReadFile(filepath.Join("testdata", "stream", tc.name+".anthropic.sse"))
			if err != nil {
				t.Fatal(err)
			}
			out, s := convertFed(input, 0)
			final := s.responseJSON()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var req struct {
					Stream bool `json:"stream"`
				}
				_ = json.NewDecoder(r.Body).Decode(&req)
				if req.Stream {
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = w.Write(out)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(final)
			}))
			defer srv.Close()
			client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey(testClientKey), option.WithMaxRetries(0))
			params := responses.ResponseNewParams{
				Model: convTestModel,
				Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
			}

			stream := client.Responses.NewStreaming(context.Background(), params)
			var acc responses.ResponseAccumulator
			n := int64(0)
			for stream.Next() {
				ev := stream.Current()
				if ev.SequenceNumber != n || !ev.JSON.SequenceNumber.Valid() {
					t.Fatalf("event %d (%s): sequence_number %d", n, ev.Type, ev.SequenceNumber)
				}
				n++
				var sev responses.ResponsesServerEventUnion
				if err := json.Unmarshal([]byte(ev.RawJSON()), &sev); err != nil {
					t.Fatalf("event %s: %v", ev.Type, err)
				}
				if err := acc.AddEvent(sev); err != nil {
					t.Fatalf("the SDK accumulator refuses %s: %v\n%s", ev.Type, err, ev.RawJSON())
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream.Err() = %v", err)
			}
			snap := acc.Snapshot()
			if snap.TerminalEvent != "response."+tc.wantStatus {
				t.Fatalf("terminal event %q, want response.%s", snap.TerminalEvent, tc.wantStatus)
			}
			resp, err := acc.ReconstructedResponse()
			if err != nil {
				t.Fatalf("ReconstructedResponse: %v", err)
			}
			checkSDKResponse(t, resp, tc)

			// Non-streaming: the same response as one JSON object.
			resp, err = client.Responses.New(context.Background(), params)
			if err != nil {
				t.Fatalf("Responses.New: %v", err)
			}
			checkSDKResponse(t, resp, tc)
		})
	}
}

func checkSDKResponse(t *testing.T, resp *responses.Response, tc convStreamCase) {
	t.Helper()
	if string(resp.Status) != tc.wantStatus || resp.Model != convTestModel || resp.ID != convTestRespID {
		t.Errorf("status %q model %q id %q", resp.Status, resp.Model, resp.ID)
	}
	if got := resp.OutputText(); got != tc.wantText {
		t.Errorf("OutputText() = %q, want %q", got, tc.wantText)
	}
	var calls []string
	for _, item := range resp.Output {
		if item.Type == "function_call" {
			fc := item.AsFunctionCall()
			calls = append(calls, fc.CallID+" "+fc.Name+" "+fc.Arguments)
		}
	}
	if strings.Join(calls, "\n") != strings.Join(tc.wantCalls, "\n") {
		t.Errorf("function calls %q, want %q", calls, tc.wantCalls)
	}
	if !resp.JSON.Usage.Valid() || resp.Usage.TotalTokens != resp.Usage.InputTokens+resp.Usage.OutputTokens {
		t.Errorf("usage %+v", resp.Usage)
	}
	switch tc.wantStatus {
	case statusFailed:
		if resp.Error.Code == "" || resp.Error.Message == "" {
			t.Errorf("failed response error %+v", resp.Error)
		}
	case statusIncomplete:
		want := tc.wantReason
		if want == "" {
			want = "max_output_tokens"
		}
		if resp.IncompleteDetails.Reason != want {
			t.Errorf("incomplete_details %+v", resp.IncompleteDetails)
		}
	}
}

// The SDK's strict accumulator also rebuilds the agent stream: signed reasoning, redacted
// reasoning, a web search, a namespaced call and a custom call.
func TestConvertedAgentStreamReadByOpenAISDK(t *testing.T) {
	t.Parallel()
	s := newResponsesStream(convTestModel, convTestRespID, convTestCreated)
	s.tools = newConvTools()
	s.tools.add(toolFunction, "mcp__gh", "issue")
	s.tools.add(toolCustom, "", "apply_patch")
	out := append(append([]byte(nil), s.feed([]byte(convAgentStream))...), s.finish()...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(out)
	}))
	defer srv.Close()
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey(testClientKey), option.WithMaxRetries(0))
	stream := client.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
		Model: convTestModel, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	var acc responses.ResponseAccumulator
	for stream.Next() {
		var sev responses.ResponsesServerEventUnion
		if err := json.Unmarshal([]byte(stream.Current().RawJSON()), &sev); err != nil {
			t.Fatal(err)
		}
		if err := acc.AddEvent(sev); err != nil {
			t.Fatalf("the SDK accumulator refuses %s: %v", stream.Current().Type, err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	resp, err := acc.ReconstructedResponse()
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, it := range resp.Output {
		types = append(types, it.Type)
		switch it.Type {
		case "reasoning":
			if it.EncryptedContent == "" {
				t.Errorf("reasoning without encrypted_content: %s", it.RawJSON())
			}
		case "function_call":
			if c := it.AsFunctionCall(); c.Name != "issue" || c.Arguments != `{"t":1}` {
				t.Errorf("function_call %s", it.RawJSON())
			}
		case "custom_tool_call":
			if c := it.AsCustomToolCall(); c.Name != "apply_patch" || c.Input != "*** Begin Patch\n+x \"q\"\n*** End Patch" {
				t.Errorf("custom_tool_call %s", it.RawJSON())
			}
		}
	}
	if strings.Join(types, ",") != "reasoning,reasoning,web_search_call,function_call,custom_tool_call" {
		t.Errorf("output types %v", types)
	}
}
