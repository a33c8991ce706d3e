package convert

// Responses input items → Anthropic messages (docs/design.md, "Conversion rules for
// agents"), and the
// repair that makes the history acceptable to Anthropic: consecutive same-role messages
// merged, every tool_result moved right after the assistant message with its tool_use,
// unanswered tool_use and orphan tool_result blocks left out.

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

const (
	roleUser      = "user"
	roleAssistant = "assistant"

	blockText       = "text"
	blockImage      = "image"
	blockDocument   = "document"
	blockToolUse    = "tool_use"
	blockToolResult = "tool_result"
	blockThinkingIn = "thinking"
	blockRedactedIn = "redacted_thinking"
)

type messagesMessage struct {
	Role    string          `json:"role"`
	Content []messagesBlock `json:"content"`
}

// messagesBlock is one Anthropic content block; empty text blocks are never built, so text
// may be omitted when empty.
type messagesBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *messagesSource `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	// Content is a tool_result's content: a JSON string or an array of blocks.
	Content json.RawMessage `json:"content,omitempty"`
	// A thinking block's text (present even when empty) and signature; a redacted one's data.
	Thinking     *string       `json:"thinking,omitempty"`
	Signature    string        `json:"signature,omitempty"`
	Data         string        `json:"data,omitempty"`
	CacheControl *cacheControl `json:"cache_control,omitempty"`
}

type messagesSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

// responsesItem is a Responses input item, reduced to the fields converted.
type responsesItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	Output    json.RawMessage `json:"output"`
	// Namespace of a function_call (Codex's namespaced tools); Input of a custom_tool_call.
	Namespace string          `json:"namespace"`
	Input     json.RawMessage `json:"input"`
	// A reasoning item's summary and encrypted_content (reasoning.go).
	Summary          json.RawMessage `json:"summary"`
	EncryptedContent string          `json:"encrypted_content"`
}

// responsesPart is a content part of an input message or a function_call_output.
type responsesPart struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Refusal  string          `json:"refusal"`
	ImageURL json.RawMessage `json:"image_url"` // a string; {url} as Chat Completions has it
	FileID   string          `json:"file_id"`
	FileData string          `json:"file_data"`
	FileURL  string          `json:"file_url"`
}

type urlHolder struct {
	URL string `json:"url"`
}

var emptyToolInput = json.RawMessage(`{}`)

// convertInput returns the system prompt (instructions, then every system and developer
// message, joined by blank lines) and the messages of the input, not yet repaired.
func convertInput(instructions, input json.RawMessage, m *Tools) (string, []messagesMessage, error) {
	var system []string
	if !jsonsse.IsNull(instructions) {
		s, ok := jsonsse.String(instructions)
		if !ok {
			return "", nil, errors.New("instructions must be a string")
		}
		if strings.TrimSpace(s) != "" {
			system = append(system, s)
		}
	}
	if jsonsse.IsNull(input) {
		return strings.Join(system, "\n\n"), nil, nil
	}
	if s, ok := jsonsse.String(input); ok {
		var msgs []messagesMessage
		if strings.TrimSpace(s) != "" {
			msgs = append(msgs, messagesMessage{Role: roleUser, Content: []messagesBlock{{Type: blockText, Text: s}}})
		}
		return strings.Join(system, "\n\n"), msgs, nil
	}
	var items []responsesItem
	if input[0] != '[' || json.Unmarshal(input, &items) != nil {
		return "", nil, errors.New("input must be a string or an array of input items")
	}
	var msgs []messagesMessage
	for i := 0; i < len(items); i++ {
		it := items[i]
		at := "input[" + strconv.Itoa(i) + "]"
		switch it.Type {
		case "", "message":
			if it.Role == "system" || it.Role == "developer" {
				s, err := systemText(it.Content, at)
				if err != nil {
					return "", nil, err
				}
				if strings.TrimSpace(s) != "" {
					system = append(system, s)
				}
				continue
			}
			if it.Role != roleUser && it.Role != roleAssistant {
				return "", nil, errors.New(at + ".role must be one of user, assistant, system, developer")
			}
			blocks, err := contentBlocks(it.Content, it.Role == roleAssistant, at)
			if err != nil {
				return "", nil, err
			}
			msgs = append(msgs, messagesMessage{Role: it.Role, Content: blocks})
		case "function_call", "custom_tool_call":
			id := toolID(it.CallID)
			if id == "" || it.Name == "" {
				return "", nil, errors.New(at + ": a " + it.Type + " needs call_id and name")
			}
			var input json.RawMessage
			var name string
			if it.Type == "custom_tool_call" {
				name = m.flatName(it.Namespace, it.Name)
				input = customInput(it.Input)
			} else {
				name = m.flatName(it.Namespace, it.Name)
				input = toolInput(it.Arguments)
			}
			msgs = append(msgs, messagesMessage{Role: roleAssistant, Content: []messagesBlock{{
				Type: blockToolUse, ID: id, Name: name, Input: input}}})
		case "function_call_output", "custom_tool_call_output":
			id := toolID(it.CallID)
			if id == "" {
				return "", nil, errors.New(at + ": a " + it.Type + " needs call_id")
			}
			content, err := toolResultContent(it.Output, at)
			if err != nil {
				return "", nil, err
			}
			msgs = append(msgs, messagesMessage{Role: roleUser, Content: []messagesBlock{{
				Type: blockToolResult, ToolUseID: id, Content: content}}})
		case "reasoning":
			if b, ok := reasoningBlock(it); ok {
				msgs = append(msgs, messagesMessage{Role: roleAssistant, Content: []messagesBlock{b}})
			}
		case "item_reference":
			return "", nil, errors.New(at + ": item_reference is not supported for this model; send the items themselves")
		case "web_search_call":
			// A server search Claude ran: its findings are in the messages that follow.
		case "additional_tools":
			// Tools declared in the input (Codex): converted with the request's own tools
			// (addInputTools).
		default:
			// Items of tools Claude has no counterpart for (local_shell_call, tool_search_call,
			// an OpenAI compaction item ...): left out, and said so in the record.
			m.warn(at + ": item type " + quoteForError(it.Type) + " has no Claude equivalent; left out")
		}
	}
	return strings.Join(system, "\n\n"), msgs, nil
}

// toolID maps a call_id to a tool_use id: Anthropic accepts [A-Za-z0-9_-] only. The
// mapping is the same for a function_call and its output, and is the identity on the ids
// this gateway hands out (Anthropic's own toolu_ ids).
func toolID(callID string) string {
	b := []byte(callID)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// repairMessages merges consecutive same-role messages and rebuilds the tool pairing:
// Anthropic wants each tool_use answered by a tool_result at the start of the very next
// (user) message, and no tool_result without its tool_use.
func repairMessages(msgs []messagesMessage) []messagesMessage {
	msgs = mergeRoles(msgs)
	results := make(map[string]messagesBlock)
	for _, m := range msgs {
		for _, b := range m.Content {
			if b.Type == blockToolResult {
				if _, dup := results[b.ToolUseID]; !dup {
					results[b.ToolUseID] = b
				}
			}
		}
	}
	used := make(map[string]bool)
	var out []messagesMessage
	for _, m := range msgs {
		var kept []messagesBlock
		var answers []messagesBlock
		for _, b := range m.Content {
			switch {
			case b.Type == blockToolResult:
				continue // re-inserted after its tool_use below, or dropped as an orphan
			case b.Type == blockToolUse:
				r, answered := results[b.ID]
				if !answered || used[b.ID] {
					continue // unanswered, or a repeated id
				}
				used[b.ID] = true
				answers = append(answers, r)
			}
			kept = append(kept, b)
		}
		if len(kept) > 0 {
			out = append(out, messagesMessage{Role: m.Role, Content: kept})
		}
		if len(answers) > 0 {
			out = append(out, messagesMessage{Role: roleUser, Content: answers})
		}
	}
	return mergeRoles(out)
}

// mergeRoles joins consecutive messages of the same role and drops empty ones.
func mergeRoles(msgs []messagesMessage) []messagesMessage {
	var out []messagesMessage
	for _, m := range msgs {
		if len(m.Content) == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Role == m.Role {
			out[n-1].Content = append(out[n-1].Content, m.Content...)
			continue
		}
		out = append(out, messagesMessage{Role: m.Role, Content: append([]messagesBlock(nil), m.Content...)})
	}
	return out
}
