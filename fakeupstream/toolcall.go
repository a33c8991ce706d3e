package fakeupstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// ToolCall is a scripted answer that asks the client to run one tool: a function_call
// item on /v1/responses, a tool_calls entry on /v1/chat/completions, a tool_use block on
// /v1/messages (toolcall_wire.go), streamed or not like the text answers.
type ToolCall struct {
	// Name is the tool's name as the client declared it (e.g. Codex's exec_command,
	// Claude Code's Bash).
	Name string `json:"name"`
	// Input is the call's arguments, a JSON object; empty means {}.
	Input json.RawMessage `json:"input,omitempty"`
	// ID is the call's id; "" generates one (call_…, toolu_…).
	ID string `json:"id,omitempty"`
	// Custom makes it a call of a custom (freeform) tool: Input is then a JSON string, the
	// raw text the tool gets (toolcall_custom.go).
	Custom bool `json:"custom,omitempty"`
	// Namespace is the namespace the called tool was declared in (Codex's namespaced
	// tools); it is sent on the Responses call item.
	Namespace string `json:"namespace,omitempty"`
}

func (s Script) validateToolCall() error {
	if tc := s.ToolCall; tc != nil {
		if tc.Name == "" {
			return fmt.Errorf("tool_call needs a name")
		}
		if tc.Custom {
			var text string
			if err := json.Unmarshal(tc.Input, &text); err != nil {
				return fmt.Errorf("a custom tool_call's input must be a JSON string")
			}
		} else if len(tc.Input) > 0 {
			var obj map[string]any
			if err := json.Unmarshal(tc.Input, &obj); err != nil || obj == nil {
				return fmt.Errorf("tool_call input must be a JSON object")
			}
		}
	}
	if s.AfterToolResult != nil {
		if err := s.AfterToolResult.validate(); err != nil {
			return fmt.Errorf("after_tool_result: %w", err)
		}
	}
	return nil
}

// forToolResult is AfterToolResult when the script has one and the body carries a tool
// result, else the script itself.
func (s Script) forToolResult(a api, body []byte) Script {
	if s.AfterToolResult == nil || !hasToolResult(a, body) {
		return s
	}
	return *s.AfterToolResult
}

// hasToolResult reports whether a request body sends a tool's output back: an input item
// of a *_output type (function_call_output, custom_tool_call_output, …) on Responses, a
// message of role "tool" on Chat Completions, a tool_result content block on Messages.
func hasToolResult(a api, body []byte) bool {
	var req struct {
		Input    json.RawMessage `json:"input"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(body, &req) != nil {
		return false
	}
	switch a {
	case apiResponses:
		var items []struct {
			Type string `json:"type"`
		}
		if !bytes.HasPrefix(bytes.TrimSpace(req.Input), []byte("[")) || json.Unmarshal(req.Input, &items) != nil {
			return false
		}
		for _, it := range items {
			if strings.HasSuffix(it.Type, "_output") {
				return true
			}
		}
	case apiChat:
		for _, m := range req.Messages {
			if m.Role == "tool" {
				return true
			}
		}
	case apiMessages:
		for _, m := range req.Messages {
			var blocks []struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(m.Content, &blocks) != nil {
				continue // a string content
			}
			for _, b := range blocks {
				if b.Type == "tool_result" {
					return true
				}
			}
		}
	}
	return false
}

// customInput is a custom call's raw input text.
func (tc ToolCall) customInput() string {
	var text string
	_ = json.Unmarshal(tc.Input, &text) // checked by validateToolCall
	return text
}

// toolInput is the call's arguments as compact JSON text; a custom call's are
// {"input": <text>}.
func (tc ToolCall) toolInput() string {
	if tc.Custom {
		b, _ := json.Marshal(map[string]string{"input": tc.customInput()})
		return string(b)
	}
	if len(tc.Input) == 0 {
		return "{}"
	}
	var b bytes.Buffer
	if json.Compact(&b, tc.Input) != nil {
		return "{}"
	}
	return b.String()
}

// inputPieces splits the arguments in two, as providers stream them in fragments.
func inputPieces(args string) []string {
	if len(args) < 2 {
		return []string{args}
	}
	return []string{args[:len(args)/2], args[len(args)/2:]}
}
