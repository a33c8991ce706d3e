package plugin

// Codex's remote compaction, POST /v1/responses/compact (docs/design.md,
// "Conversion contract"). Codex sends {model, instructions, input, ...} and replaces its
// history with the response's output items ({"output": [ResponseItem...]}, codex-rs
// codex-api endpoint/compact.rs). On an openai group the request passes through to
// <base_url>/v1/responses/compact and is billed like a Responses call; on an anthropic
// group it is converted into one Messages call asking Claude to summarise the conversation,
// and answered with the conversation's last user messages and a user message holding the
// summary, which Codex keeps as its new history.

import (
	"bytes"
	"encoding/json"

	"github.com/poolgate/poolgate/plugin/convert"
	"github.com/poolgate/poolgate/plugin/jsonsse"
)

const pathResponsesCompact = "/v1/responses/compact"

const (
	// compactPrompt is the user turn appended to the conversation to summarise it.
	compactPrompt = "Compact this conversation into a checkpoint for another model that will continue the work " +
		"without seeing it. Write the summary only: the user's goals, constraints and preferences; what has been " +
		"done so far (files read and changed, commands run and their results, tools used); decisions taken and " +
		"why; open problems; and the exact next steps. Keep names, paths, identifiers and numbers verbatim."
	// compactSummaryPrefix introduces the summary in the compacted history.
	compactSummaryPrefix = "Summary of the conversation so far, written by the model when the context was " +
		"compacted; continue the work from it:\n\n"
	// maxCompactKeptBytes bounds the user messages kept verbatim in the compacted history,
	// counted from the newest.
	maxCompactKeptBytes = 64 << 10
)

// compactFields returns the fields of the summarisation request: the conversation with the
// compaction prompt as a last user turn, without tools, tool_choice or text format (the
// history's calls are declared by placeholders), not streamed to the client.
func compactFields(req *requestFields) requestFields {
	out := *req
	// One statement each: Yaegi v0.16.1 panics on "a, b = nil, nil" (docs/yaegi.md).
	out.Tools = nil
	out.ToolChoice = nil
	out.Text = nil
	prompt, _ := jsonsse.Encode(compactPrompt)
	turn := append(append([]byte(`{"role":"user","content":`), prompt...), '}')
	in := bytes.TrimSpace(req.Input)
	switch {
	case len(in) > 1 && in[0] == '[' && in[len(in)-1] == ']':
		body := bytes.TrimSpace(in[1 : len(in)-1])
		b := append([]byte{'['}, body...)
		if len(body) > 0 {
			b = append(b, ',')
		}
		out.Input = append(append(b, turn...), ']')
	case len(in) > 0 && in[0] == '"':
		out.Input = append(append(append(append([]byte(`[{"role":"user","content":`), in...), "},"...), turn...), ']')
	default:
		out.Input = append(append([]byte{'['}, turn...), ']')
	}
	return out
}

// compactItem is an input item, read for the user messages the compacted history keeps.
type compactItem struct {
	Type string `json:"type"`
	Role string `json:"role"`
}

// compactOutput renders the compaction answer: the newest user messages of the client's
// input (up to maxCompactKeptBytes, in their order) and a user message with the summary.
func compactOutput(input json.RawMessage, summary string) []byte {
	var items []json.RawMessage
	if len(input) > 0 && input[0] == '[' {
		_ = json.Unmarshal(input, &items)
	}
	var kept []json.RawMessage
	size := 0
	for i := len(items) - 1; i >= 0; i-- {
		var it compactItem
		if json.Unmarshal(items[i], &it) != nil || (it.Type != "" && it.Type != "message") || it.Role != convert.RoleUser {
			continue
		}
		if size+len(items[i]) > maxCompactKeptBytes {
			break
		}
		size += len(items[i])
		kept = append(kept, items[i])
	}
	b := make([]byte, 0, size+len(summary)+256)
	b = append(b, `{"object":"response.compaction","output":[`...)
	for i := len(kept) - 1; i >= 0; i-- {
		b = append(b, kept[i]...)
		b = append(b, ',')
	}
	b = append(b, `{"type":"message","role":"user","content":[{"type":"input_text","text":`...)
	b = convert.AppendJSONString(b, compactSummaryPrefix+summary)
	return append(b, "}]}]}"...)
}

// outputText returns the text of the converted response's message items.
func outputText(s *convert.Stream) string {
	var resp struct {
		Output []struct {
			Type    string `json:"type"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
	}
	if json.Unmarshal(s.ResponseJSON(), &resp) != nil {
		return ""
	}
	var buf bytes.Buffer
	for _, it := range resp.Output {
		if it.Type != "message" {
			continue
		}
		for _, p := range it.Content {
			if p.Type == "output_text" {
				buf.WriteString(p.Text)
			}
		}
	}
	return buf.String()
}
