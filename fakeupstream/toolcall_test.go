package fakeupstream

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// A scripted tool call decoded by the official SDKs, streamed and not, and the answer
// switching to AfterToolResult once the request carries the tool's output.

var toolScript = Script{
	ToolCall:        &ToolCall{Name: "exec_command", Input: json.RawMessage(`{"cmd": "echo hi > marker.txt"}`), ID: "call_fixed"},
	Usage:           &Usage{InputTokens: 50, OutputTokens: 9},
	AfterToolResult: &Script{Text: "done", Usage: &Usage{InputTokens: 70, OutputTokens: 3}},
}

const wantArgs = `{"cmd":"echo hi > marker.txt"}`

func toolFake(t *testing.T) string {
	t.Helper()
	fake, ts := startFake(t)
	fake.SetCredentialScript("sk-tool", toolScript)
	return ts.URL
}

func TestToolCallResponsesSDK(t *testing.T) {
	t.Parallel()
	client := openai.NewClient(option.WithBaseURL(toolFake(t)+"/v1/"), option.WithAPIKey("sk-tool"), option.WithMaxRetries(0))
	first := responses.ResponseNewParams{Model: "gpt-4o", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("run it")}}
	check := func(t *testing.T, r *responses.Response) {
		t.Helper()
		if len(r.Output) != 1 || r.Output[0].Type != "function_call" || r.Output[0].Name != "exec_command" ||
			r.Output[0].Arguments.OfString != wantArgs || r.Output[0].CallID != "call_fixed" {
			t.Fatalf("output = %+v, want one function_call exec_command %s", r.Output, wantArgs)
		}
		if r.Usage.InputTokens != 50 || r.Usage.OutputTokens != 9 {
			t.Errorf("usage = %+v, want 50/9", r.Usage)
		}
	}
	t.Run("non-stream", func(t *testing.T) {
		r, err := client.Responses.New(context.Background(), first)
		if err != nil {
			t.Fatal(err)
		}
		check(t, r)
	})
	t.Run("stream", func(t *testing.T) {
		stream := client.Responses.NewStreaming(context.Background(), first)
		defer stream.Close()
		var final *responses.Response
		var args string
		for stream.Next() {
			ev := stream.Current()
			switch ev.Type {
			case "response.function_call_arguments.delta":
				args += ev.Delta
			case "response.completed":
				r := ev.Response
				final = &r
			}
		}
		if err := stream.Err(); err != nil || final == nil {
			t.Fatalf("stream: %v, completed %v", err, final != nil)
		}
		if args != wantArgs {
			t.Errorf("argument deltas join to %q, want %q", args, wantArgs)
		}
		check(t, final)
	})
	t.Run("after the tool result", func(t *testing.T) {
		var r responses.Response
		body := `{"model":"gpt-4o","input":[{"type":"function_call","call_id":"call_fixed","name":"exec_command","arguments":"{}"},` +
			`{"type":"function_call_output","call_id":"call_fixed","output":"hi"}]}`
		if err := client.Post(context.Background(), "responses", json.RawMessage(body), &r); err != nil {
			t.Fatal(err)
		}
		if r.OutputText() != "done" || r.Usage.InputTokens != 70 {
			t.Errorf("text %q usage %+v, want done with 70 input tokens", r.OutputText(), r.Usage)
		}
	})
}

func TestToolCallChatSDK(t *testing.T) {
	t.Parallel()
	client := openai.NewClient(option.WithBaseURL(toolFake(t)+"/v1/"), option.WithAPIKey("sk-tool"), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("run it")}}
	check := func(t *testing.T, c openai.ChatCompletion) {
		t.Helper()
		if len(c.Choices) != 1 || c.Choices[0].FinishReason != "tool_calls" || len(c.Choices[0].Message.ToolCalls) != 1 {
			t.Fatalf("choices = %+v, want one tool call finishing tool_calls", c.Choices)
		}
		call := c.Choices[0].Message.ToolCalls[0]
		if call.ID != "call_fixed" || call.Function.Name != "exec_command" || call.Function.Arguments != wantArgs {
			t.Errorf("tool call = %+v", call)
		}
	}
	t.Run("non-stream", func(t *testing.T) {
		c, err := client.Chat.Completions.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		check(t, *c)
	})
	t.Run("stream", func(t *testing.T) {
		p := params
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(context.Background(), p)
		defer stream.Close()
		acc := openai.ChatCompletionAccumulator{}
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		check(t, acc.ChatCompletion)
		if acc.Usage.PromptTokens != 50 {
			t.Errorf("usage = %+v, want 50 prompt tokens", acc.Usage)
		}
	})
	t.Run("after the tool result", func(t *testing.T) {
		p := params
		p.Messages = append(p.Messages, openai.ToolMessage("hi", "call_fixed"))
		c, err := client.Chat.Completions.New(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if c.Choices[0].Message.Content != "done" {
			t.Errorf("content = %q, want done", c.Choices[0].Message.Content)
		}
	})
}

func TestToolCallMessagesSDK(t *testing.T) {
	t.Parallel()
	client := anthropic.NewClient(anthropicoption.WithBaseURL(toolFake(t)), anthropicoption.WithAPIKey("sk-tool"), anthropicoption.WithMaxRetries(0))
	params := anthropic.MessageNewParams{Model: "claude-sonnet-4-5", MaxTokens: 100,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("run it"))}}
	check := func(t *testing.T, m anthropic.Message) {
		t.Helper()
		if m.StopReason != "tool_use" || len(m.Content) != 1 || m.Content[0].Type != "tool_use" {
			t.Fatalf("message = %+v, want one tool_use block", m)
		}
		b := m.Content[0]
		var in struct{ Cmd string }
		_ = json.Unmarshal(b.Input, &in)
		if b.ID != "call_fixed" || b.Name != "exec_command" || in.Cmd != "echo hi > marker.txt" {
			t.Errorf("tool_use = id %q name %q input %s", b.ID, b.Name, b.Input)
		}
	}
	t.Run("non-stream", func(t *testing.T) {
		m, err := client.Messages.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		check(t, *m)
	})
	t.Run("stream", func(t *testing.T) {
		stream := client.Messages.NewStreaming(context.Background(), params)
		defer stream.Close()
		var m anthropic.Message
		for stream.Next() {
			if err := m.Accumulate(stream.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		check(t, m)
	})
	t.Run("after the tool result", func(t *testing.T) {
		p := params
		p.Messages = append(p.Messages,
			anthropic.NewAssistantMessage(anthropic.NewToolUseBlock("call_fixed", map[string]any{"cmd": "x"}, "exec_command")),
			anthropic.NewUserMessage(anthropic.NewToolResultBlock("call_fixed", "hi", false)))
		m, err := client.Messages.New(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Content) != 1 || m.Content[0].Text != "done" {
			t.Errorf("content = %+v, want done", m.Content)
		}
	})
}

func TestHasToolResult(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    api
		body string
		want bool
	}{
		{"responses string input", apiResponses, `{"input":"hi"}`, false},
		{"responses function call only", apiResponses, `{"input":[{"type":"function_call","call_id":"c"}]}`, false},
		{"responses function_call_output", apiResponses, `{"input":[{"type":"function_call_output","call_id":"c","output":"x"}]}`, true},
		{"responses custom_tool_call_output", apiResponses, `{"input":[{"type":"custom_tool_call_output","call_id":"c","output":"x"}]}`, true},
		{"chat without tool message", apiChat, `{"messages":[{"role":"user","content":"hi"}]}`, false},
		{"chat tool message", apiChat, `{"messages":[{"role":"tool","content":"x","tool_call_id":"c"}]}`, true},
		{"messages string content", apiMessages, `{"messages":[{"role":"user","content":"hi"}]}`, false},
		{"messages tool_use only", apiMessages, `{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t"}]}]}`, false},
		{"messages tool_result", apiMessages, `{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t"}]}]}`, true},
		{"not JSON", apiMessages, `{`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hasToolResult(tc.a, []byte(tc.body)); got != tc.want {
				t.Errorf("hasToolResult = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestToolCallScriptValidation(t *testing.T) {
	for _, tc := range []struct{ name, script string }{
		{"no name", `{"tool_call":{"input":{}}}`},
		{"input not an object", `{"tool_call":{"name":"x","input":[1]}}`},
		{"bad after_tool_result", `{"after_tool_result":{"status":42}}`},
		{"custom input not a string", `{"tool_call":{"name":"exec","custom":true,"input":{"a":1}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseScript([]byte(tc.script)); err == nil {
				t.Errorf("ParseScript(%s) accepted it", tc.script)
			}
		})
	}
}

func TestToolCallCustomResponsesSDK(t *testing.T) {
	t.Parallel()
	fake, ts := startFake(t)
	const js = "const r = await tools.exec_command({cmd: \"ls\"});\ntext(r.output);"
	fake.SetCredentialScript("sk-custom", Script{ToolCall: &ToolCall{Name: "exec", Namespace: "functions", Custom: true,
		Input: json.RawMessage(`"const r = await tools.exec_command({cmd: \"ls\"});\ntext(r.output);"`)}})
	client := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("sk-custom"), option.WithMaxRetries(0))
	params := responses.ResponseNewParams{Model: "gpt-4o", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("run it")}}
	check := func(t *testing.T, r *responses.Response) {
		t.Helper()
		if len(r.Output) != 1 || r.Output[0].Type != "custom_tool_call" || r.Output[0].Name != "exec" || r.Output[0].Input != js {
			t.Fatalf("output = %+v, want one custom_tool_call exec with the raw input", r.Output)
		}
		if !strings.Contains(r.Output[0].RawJSON(), `"namespace":"functions"`) {
			t.Errorf("the call lacks its namespace: %s", r.Output[0].RawJSON())
		}
	}
	t.Run("non-stream", func(t *testing.T) {
		r, err := client.Responses.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		check(t, r)
	})
	t.Run("stream", func(t *testing.T) {
		stream := client.Responses.NewStreaming(context.Background(), params)
		defer stream.Close()
		var final *responses.Response
		var input string
		for stream.Next() {
			ev := stream.Current()
			switch ev.Type {
			case "response.custom_tool_call_input.delta":
				input += ev.Delta
			case "response.completed":
				r := ev.Response
				final = &r
			}
		}
		if err := stream.Err(); err != nil || final == nil {
			t.Fatalf("stream: %v, completed %v", err, final != nil)
		}
		if input != js {
			t.Errorf("input deltas join to %q, want %q", input, js)
		}
		check(t, final)
	})
	t.Run("messages: a tool_use with the input as its one string", func(t *testing.T) {
		resp := post(t, context.Background(), ts.URL+"/v1/messages", "sk-custom", msgBody, nil)
		var m struct {
			Content []struct {
				Name  string `json:"name"`
				Input struct {
					Input string `json:"input"`
				} `json:"input"`
			} `json:"content"`
		}
		if err := json.Unmarshal([]byte(readAll(t, resp)), &m); err != nil || len(m.Content) != 1 || m.Content[0].Input.Input != js {
			t.Errorf("message = %+v (%v), want one tool_use with input.input the raw text", m, err)
		}
	})
}
