package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"
)

// sseEvents splits an SSE frame into (event, data) pairs; a frame must end with a blank line.
func sseEvents(t *testing.T, frame string) [][2]string {
	t.Helper()
	if !strings.HasSuffix(frame, "\n\n") {
		t.Fatalf("frame %q does not end with a blank line", frame)
	}
	var out [][2]string
	for _, block := range strings.Split(strings.TrimSuffix(frame, "\n\n"), "\n\n") {
		var ev, data string
		for _, line := range strings.Split(block, "\n") {
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data += strings.TrimPrefix(line, "data: ")
			default:
				t.Fatalf("unexpected line %q in frame %q", line, frame)
			}
		}
		out = append(out, [2]string{ev, data})
	}
	return out
}

func TestStreamErrorFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		path      string
		typ       string
		wantEvent string
		check     func(t *testing.T, data map[string]interface{})
	}{
		{
			name: "responses: response.failed with a mapped code", path: pathResponses, typ: "rate_limit_error",
			wantEvent: "response.failed",
			check: func(t *testing.T, d map[string]interface{}) {
				if d["type"] != "response.failed" {
					t.Errorf("type = %v", d["type"])
				}
				r, _ := d["response"].(map[string]interface{})
				if r == nil {
					t.Fatalf("no response object in %v", d)
				}
				id, _ := r["id"].(string)
				if !strings.HasPrefix(id, "resp_") || r["object"] != "response" || r["status"] != "failed" || r["model"] != "gpt-4o" {
					t.Errorf("response = %v, want id resp_…, object response, status failed, model gpt-4o", r)
				}
				if out, ok := r["output"].([]interface{}); !ok || len(out) != 0 {
					t.Errorf("output = %v, want []", r["output"])
				}
				e, _ := r["error"].(map[string]interface{})
				if e["code"] != "rate_limit_exceeded" || e["message"] != "boom \"quoted\" <b>" {
					t.Errorf("error = %v", e)
				}
			},
		},
		{
			name: "chat: data-only error frame", path: pathChat, typ: "upstream_error",
			check: func(t *testing.T, d map[string]interface{}) {
				e, _ := d["error"].(map[string]interface{})
				if e["type"] != "upstream_error" || e["code"] != "upstream_error" || e["message"] != "boom \"quoted\" <b>" {
					t.Errorf("error = %v", e)
				}
			},
		},
		{
			name: "chat: empty type becomes api_error", path: pathChat, typ: "",
			check: func(t *testing.T, d map[string]interface{}) {
				e, _ := d["error"].(map[string]interface{})
				if e["type"] != "api_error" {
					t.Errorf("error = %v", e)
				}
			},
		},
		{
			name: "anthropic: error event", path: pathMessages, typ: "overloaded_error", wantEvent: "error",
			check: func(t *testing.T, d map[string]interface{}) {
				e, _ := d["error"].(map[string]interface{})
				if d["type"] != "error" || e["type"] != "overloaded_error" || e["message"] != "boom \"quoted\" <b>" {
					t.Errorf("data = %v", d)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			frame := string(streamErrorFrame(tt.path, "gpt-4o", tt.typ, `boom "quoted" <b>`))
			if strings.HasPrefix(frame, "\n") {
				t.Errorf("frame starts with a blank line: %q", frame)
			}
			evs := sseEvents(t, frame)
			if len(evs) != 1 {
				t.Fatalf("frame %q has %d events, want 1", frame, len(evs))
			}
			if evs[0][0] != tt.wantEvent {
				t.Errorf("event = %q, want %q", evs[0][0], tt.wantEvent)
			}
			var d map[string]interface{}
			if err := json.Unmarshal([]byte(evs[0][1]), &d); err != nil {
				t.Fatalf("data %q: %v", evs[0][1], err)
			}
			tt.check(t, d)
		})
	}
}

// flushRecorder counts flushes so the test can tell writeStreamError flushed.
type flushRecorder struct {
	*httptest.ResponseRecorder
	flushes int
}

func (f *flushRecorder) Flush() { f.flushes++; f.ResponseRecorder.Flush() }

func TestWriteStreamErrorFlushes(t *testing.T) {
	t.Parallel()
	rec := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	writeStreamError(rec, pathChat, "gpt-4o", typeUpstream, "stream cut")
	if rec.flushes != 1 {
		t.Errorf("flushes = %d, want 1", rec.flushes)
	}
	if !strings.HasPrefix(rec.Body.String(), `data: {"error":`) {
		t.Errorf("body = %q", rec.Body.String())
	}
}

// sdkServer answers every POST with a committed SSE stream: prefix, then writeStreamError.
func sdkServer(t *testing.T, path, prefix string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(prefix))
		w.(http.Flusher).Flush()
		writeStreamError(w, path, "gpt-4o", typeUpstream, "Upstream stream ended unexpectedly")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The official SDKs judge the frames: each must surface the error, never a finished answer.
func TestStreamErrorThroughSDKs(t *testing.T) {
	t.Parallel()

	t.Run("openai chat: stream error after content and after a keep-alive", func(t *testing.T) {
		t.Parallel()
		prefixes := map[string]string{
			"after content":              `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}` + "\n\n",
			"after a keep-alive comment": ": keep-alive\n",
		}
		for name, prefix := range prefixes {
			url := sdkServer(t, pathChat, prefix)
			client := openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey(testClientKey), option.WithMaxRetries(0))
			stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
				Model:    "gpt-4o",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			})
			for stream.Next() {
			}
			err := stream.Err()
			var se *ssestream.StreamError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), "Upstream stream ended unexpectedly") {
				t.Errorf("%s: stream.Err() = %v, want a StreamError carrying the message", name, err)
			}
		}
	})

	t.Run("openai responses: a response.failed event, no completion", func(t *testing.T) {
		t.Parallel()
		prefix := "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-4o\",\"output\":[]}}\n\n" +
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"m1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hel\"}\n\n" +
			": keep-alive\n"
		url := sdkServer(t, pathResponses, prefix)
		client := openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey(testClientKey), option.WithMaxRetries(0))
		stream := client.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
			Model: "gpt-4o",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
		})
		var types []string
		var failed responses.ResponseFailedEvent
		for stream.Next() {
			ev := stream.Current()
			types = append(types, ev.Type)
			if ev.Type == "response.failed" {
				failed = ev.AsResponseFailed()
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream.Err() = %v, want the failure as a response.failed event", err)
		}
		want := []string{"response.created", "response.output_text.delta", "response.failed"}
		if strings.Join(types, ",") != strings.Join(want, ",") {
			t.Fatalf("event types = %v, want %v", types, want)
		}
		r := failed.Response
		if r.Status != responses.ResponseStatusFailed || string(r.Error.Code) != "upstream_error" ||
			r.Error.Message != "Upstream stream ended unexpectedly" || !strings.HasPrefix(r.ID, "resp_") {
			t.Errorf("failed response = status %q, error %+v, id %q", r.Status, r.Error, r.ID)
		}
	})

	t.Run("anthropic messages: stream error", func(t *testing.T) {
		t.Parallel()
		prefix := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":0}}}\n\n" +
			"event: ping\ndata: {\"type\": \"ping\"}\n\n"
		url := sdkServer(t, pathMessages, prefix)
		client := anthropic.NewClient(anthropicoption.WithBaseURL(url), anthropicoption.WithAPIKey(testClientKey), anthropicoption.WithMaxRetries(0))
		stream := client.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{
			Model:     "claude-sonnet-4-5",
			MaxTokens: 16,
			Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		for stream.Next() {
		}
		err := stream.Err()
		if err == nil || !strings.Contains(err.Error(), "Upstream stream ended unexpectedly") {
			t.Errorf("stream.Err() = %v, want the stream error", err)
		}
	})
}
