package convert

// Reasoning, custom tool inputs and structured output of a converted request (docs/design.md,
// "Conversion rules for agents"). A Claude thinking block comes back as a reasoning
// item whose summary is the thinking text and whose encrypted_content is
// thinkingSigPrefix + the signature (a redacted block: redactedPrefix + its data); the same
// item in a later turn's input is restored as exactly that block. The prefixes tell these
// apart from the encrypted reasoning of OpenAI models, which Anthropic cannot read.

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

const (
	thinkingSigPrefix = "claude-thinking:"
	redactedPrefix    = "claude-redacted:"
)

// reasoningSummaryPart is a reasoning item's summary part.
type reasoningSummaryPart struct {
	Text string `json:"text"`
}

// reasoningBlock restores the thinking block of a reasoning item this gateway produced;
// ok is false for any other reasoning item.
func reasoningBlock(it responsesItem) (messagesBlock, bool) {
	enc := it.EncryptedContent
	if strings.HasPrefix(enc, redactedPrefix) && len(enc) > len(redactedPrefix) {
		return messagesBlock{Type: blockRedactedIn, Data: enc[len(redactedPrefix):]}, true
	}
	if !strings.HasPrefix(enc, thinkingSigPrefix) || len(enc) == len(thinkingSigPrefix) {
		return messagesBlock{}, false
	}
	var parts []reasoningSummaryPart
	if len(it.Summary) > 0 && it.Summary[0] == '[' {
		_ = json.Unmarshal(it.Summary, &parts)
	}
	var sb strings.Builder
	for _, p := range parts {
		sb.WriteString(p.Text)
	}
	text := sb.String()
	return messagesBlock{Type: blockThinkingIn, Thinking: &text, Signature: enc[len(thinkingSigPrefix):]}, true
}

// withoutThinking drops the thinking blocks of the history, for a request that does not
// think (Anthropic would refuse a signature it is not asked to check).
func withoutThinking(msgs []messagesMessage) []messagesMessage {
	found := false
	for _, m := range msgs {
		for _, b := range m.Content {
			if b.Type == blockThinkingIn || b.Type == blockRedactedIn {
				found = true
			}
		}
	}
	if !found {
		return msgs
	}
	var out []messagesMessage
	for _, m := range msgs {
		var kept []messagesBlock
		for _, b := range m.Content {
			if b.Type != blockThinkingIn && b.Type != blockRedactedIn {
				kept = append(kept, b)
			}
		}
		out = append(out, messagesMessage{Role: m.Role, Content: kept})
	}
	return mergeRoles(out)
}

// dropBareThinking leaves out an assistant message that holds thinking blocks only (its
// call was left out as unanswered, or the turn was cut after thinking): Anthropic wants a
// thinking block followed by the answer it led to.
func dropBareThinking(msgs []messagesMessage) []messagesMessage {
	bare := false
	for _, m := range msgs {
		if m.Role == roleAssistant && onlyThinking(m.Content) {
			bare = true
		}
	}
	if !bare {
		return msgs
	}
	var out []messagesMessage
	for _, m := range msgs {
		if m.Role == roleAssistant && onlyThinking(m.Content) {
			continue
		}
		out = append(out, m)
	}
	return mergeRoles(out)
}

func onlyThinking(blocks []messagesBlock) bool {
	for _, b := range blocks {
		if b.Type != blockThinkingIn && b.Type != blockRedactedIn {
			return false
		}
	}
	return len(blocks) > 0
}

// customInput is the tool_use input of a custom_tool_call: its raw input as the one string.
func customInput(raw json.RawMessage) json.RawMessage {
	s, _ := jsonsse.String(raw)
	b, err := jsonsse.Encode(map[string]string{customInputKey: s})
	if err != nil {
		return emptyToolInput
	}
	return b
}

// responsesText is the text member of a Responses request.
type responsesText struct {
	Format *struct {
		Type   string          `json:"type"`
		Schema json.RawMessage `json:"schema"`
	} `json:"format"`
}

// convertTextFormat maps text.format json_schema to Claude's structured output
// (output_config.format); json_object, which Claude has no mode for, is a warning.
func convertTextFormat(raw json.RawMessage, m *Tools) (*messagesOutputConfig, error) {
	if jsonsse.IsNull(raw) {
		return nil, nil
	}
	var t responsesText
	if raw[0] != '{' || json.Unmarshal(raw, &t) != nil {
		return nil, errors.New("text must be an object")
	}
	if t.Format == nil {
		return nil, nil
	}
	switch t.Format.Type {
	case "", "text":
		return nil, nil
	case "json_schema":
		if len(t.Format.Schema) == 0 || t.Format.Schema[0] != '{' {
			return nil, errors.New("text.format.schema must be a JSON Schema object")
		}
		return &messagesOutputConfig{Format: messagesOutputFormat{Type: "json_schema", Schema: t.Format.Schema}}, nil
	}
	m.warn("text.format " + quoteForError(t.Format.Type) + " has no Claude equivalent; left out")
	return nil, nil
}
