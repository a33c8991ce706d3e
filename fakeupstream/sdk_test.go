package fakeupstream

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// The official SDKs are the judges of the wire format: if they decode the
// fake's answers, real clients will.

func startFake(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	fake := New()
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	t.Cleanup(fake.Close) // runs first: releases stalls so ts.Close returns
	return fake, ts
}

var sdkUsage = Usage{InputTokens: 120, CachedTokens: 100, CacheCreationTokens: 7, OutputTokens: 30, ReasoningTokens: 4}

const sdkText = "The quick brown fox jumps over the lazy dog."

func openAIClient(t *testing.T) openai.Client {
	t.Helper()
	fake, ts := startFake(t)
	fake.SetCredentialScript("sk-sdk", Script{Text: sdkText, Usage: &sdkUsage})
	return openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("sk-sdk"), option.WithMaxRetries(0))
}

func TestOpenAISDKResponses(t *testing.T) {
	t.Parallel()
	client := openAIClient(t)
	params := responses.ResponseNewParams{
		Model: "gpt-4o",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say something")},
	}
	checkUsage := func(t *testing.T, u responses.ResponseUsage) {
		t.Helper()
		if u.InputTokens != 120 || u.InputTokensDetails.CachedTokens != 100 || u.OutputTokens != 30 ||
			u.OutputTokensDetails.ReasoningTokens != 4 || u.TotalTokens != 150 {
			t.Errorf("usage = %+v, want input 120 (cached 100), output 30 (reasoning 4), total 150", u)
		}
	}

	t.Run("non-stream", func(t *testing.T) {
		t.Parallel()
		resp, err := client.Responses.New(context.Background(), params)
		if err != nil {
			t.Fatalf("Responses.New: %v", err)
		}
		if got := resp.OutputText(); got != sdkText {
			t.Errorf("OutputText = %q, want %q", got, sdkText)
		}
		if resp.Model != "gpt-4o" || resp.Status != "completed" {
			t.Errorf("model/status = %q/%q, want gpt-4o/completed", resp.Model, resp.Status)
		}
		checkUsage(t, resp.Usage)
	})

	t.Run("stream", func(t *testing.T) {
		t.Parallel()
		stream := client.Responses.NewStreaming(context.Background(), params)
		defer stream.Close()
		var types []string
		var deltas string
		var completed *responses.Response
		for i := int64(0); stream.Next(); i++ {
			ev := stream.Current()
			if ev.SequenceNumber != i {
				t.Errorf("event %d (%s) has sequence_number %d", i, ev.Type, ev.SequenceNumber)
			}
			types = append(types, ev.Type)
			switch ev.Type {
			case "response.output_text.delta":
				deltas += ev.Delta
			case "response.output_text.done":
				if ev.Text != sdkText {
					t.Errorf("output_text.done text = %q, want %q", ev.Text, sdkText)
				}
			case "response.completed":
				r := ev.AsResponseCompleted().Response
				completed = &r
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		wantTypes := []string{"response.created", "response.in_progress", "response.output_item.added",
			"response.content_part.added"}
		for range textPieces(sdkText) {
			wantTypes = append(wantTypes, "response.output_text.delta")
		}
		wantTypes = append(wantTypes, "response.output_text.done", "response.content_part.done",
			"response.output_item.done", "response.completed")
		if len(types) != len(wantTypes) {
			t.Fatalf("event types = %v, want %v", types, wantTypes)
		}
		for i := range types {
			if types[i] != wantTypes[i] {
				t.Errorf("event %d = %s, want %s", i, types[i], wantTypes[i])
			}
		}
		if deltas != sdkText {
			t.Errorf("joined deltas = %q, want %q", deltas, sdkText)
		}
		if completed == nil {
			t.Fatal("no response.completed event")
		}
		if completed.OutputText() != sdkText {
			t.Errorf("completed OutputText = %q", completed.OutputText())
		}
		checkUsage(t, completed.Usage)
	})
}

func TestOpenAISDKChatCompletions(t *testing.T) {
	t.Parallel()
	client := openAIClient(t)
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say something")},
	}
	checkUsage := func(t *testing.T, u openai.CompletionUsage) {
		t.Helper()
		if u.PromptTokens != 120 || u.PromptTokensDetails.CachedTokens != 100 || u.CompletionTokens != 30 ||
			u.CompletionTokensDetails.ReasoningTokens != 4 || u.TotalTokens != 150 {
			t.Errorf("usage = %+v, want prompt 120 (cached 100), completion 30 (reasoning 4), total 150", u)
		}
	}

	t.Run("non-stream", func(t *testing.T) {
		t.Parallel()
		c, err := client.Chat.Completions.New(context.Background(), params)
		if err != nil {
			t.Fatalf("Chat.Completions.New: %v", err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Message.Content != sdkText || c.Choices[0].FinishReason != "stop" {
			t.Fatalf("choices = %+v, want one with %q and finish_reason stop", c.Choices, sdkText)
		}
		checkUsage(t, c.Usage)
	})

	tests := []struct {
		name         string
		includeUsage bool
	}{
		{name: "stream with include_usage", includeUsage: true},
		{name: "stream without include_usage", includeUsage: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := params
			if tt.includeUsage {
				p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			stream := client.Chat.Completions.NewStreaming(context.Background(), p)
			defer stream.Close()
			var acc openai.ChatCompletionAccumulator
			usageChunks := 0
			for stream.Next() {
				chunk := stream.Current()
				acc.AddChunk(chunk)
				if chunk.JSON.Usage.Valid() && chunk.Usage.TotalTokens > 0 {
					usageChunks++
					if len(chunk.Choices) != 0 {
						t.Errorf("usage chunk has %d choices, want 0", len(chunk.Choices))
					}
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != sdkText || acc.Choices[0].FinishReason != "stop" {
				t.Fatalf("accumulated choices = %+v, want %q with finish_reason stop", acc.Choices, sdkText)
			}
			if acc.Choices[0].Message.Role != "assistant" {
				t.Errorf("role = %q, want assistant", acc.Choices[0].Message.Role)
			}
			if tt.includeUsage {
				if usageChunks != 1 {
					t.Errorf("got %d usage chunks, want 1", usageChunks)
				}
				checkUsage(t, acc.Usage)
			} else if usageChunks != 0 {
				t.Errorf("got %d usage chunks without include_usage, want 0", usageChunks)
			}
		})
	}
}

func TestAnthropicSDKMessages(t *testing.T) {
	t.Parallel()
	fake, ts := startFake(t)
	fake.SetCredentialScript("sk-ant", Script{Text: sdkText, Usage: &sdkUsage})
	client := anthropic.NewClient(anthropicoption.WithBaseURL(ts.URL), anthropicoption.WithAPIKey("sk-ant"),
		anthropicoption.WithMaxRetries(0))
	params := anthropic.MessageNewParams{
		Model:     "claude-test",
		MaxTokens: 100,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say something"))},
	}
	check := func(t *testing.T, m anthropic.Message) {
		t.Helper()
		if len(m.Content) != 1 || m.Content[0].Text != sdkText {
			t.Errorf("content = %+v, want one text block %q", m.Content, sdkText)
		}
		// 120 total input, 100 cache read, 7 cache write: Anthropic counts 13.
		u := m.Usage
		if u.InputTokens != 13 || u.CacheReadInputTokens != 100 || u.CacheCreationInputTokens != 7 || u.OutputTokens != 30 {
			t.Errorf("usage = %+v, want input 13, cache read 100, cache creation 7, output 30", u)
		}
		if m.StopReason != "end_turn" {
			t.Errorf("stop_reason = %q, want end_turn", m.StopReason)
		}
	}

	t.Run("non-stream", func(t *testing.T) {
		t.Parallel()
		m, err := client.Messages.New(context.Background(), params)
		if err != nil {
			t.Fatalf("Messages.New: %v", err)
		}
		check(t, *m)
	})
	t.Run("stream", func(t *testing.T) {
		t.Parallel()
		stream := client.Messages.NewStreaming(context.Background(), params)
		defer stream.Close()
		var m anthropic.Message
		for stream.Next() {
			if err := m.Accumulate(stream.Current()); err != nil {
				t.Fatalf("accumulate: %v", err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		check(t, m)
	})
}
