package convert

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Run with e.g. go test -run '^$' -fuzz FuzzResponsesToMessages -fuzztime 30s ./plugin

func FuzzResponsesToMessages(f *testing.F) {
	seeds := []string{
		`{"model":"m","input":"hi"}`,
		`{"model":"m","instructions":"x","input":[{"role":"developer","content":"d"},{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"data:image/png;base64,AA"}]}],"reasoning":{"effort":"high"},"max_output_tokens":3000}`,
		`{"model":"m","tools":[{"type":"function","name":"f","parameters":{"properties":{}}}],"tool_choice":{"type":"function","name":"f"},"parallel_tool_calls":false,"input":[{"role":"user","content":"go"},{"type":"function_call","call_id":"a","name":"f","arguments":"{}"},{"type":"function_call","call_id":"b","name":"f","arguments":"{\"x\":1}"},{"type":"function_call_output","call_id":"b","output":"B"},{"role":"user","content":"x"},{"type":"function_call_output","call_id":"a","output":[{"type":"input_text","text":"A"}]},{"type":"function_call_output","call_id":"zz","output":"orphan"}]}`,
		`{"model":"m","input":[{"type":"function_call","call_id":"a b","name":"f","arguments":"{"},{"type":"function_call_output","call_id":"a.b","output":"x"},{"role":"assistant","content":[{"type":"output_text","text":"t"}]},{"type":"reasoning","summary":[]}],"temperature":2,"top_p":0}`,
		`{"model":"m","input":[{"type":"function_call_output","call_id":"a","output":"x"},{"type":"function_call","call_id":"a","name":"f","arguments":"{}"}],"reasoning":{"effort":"xhigh"}}`,
		`{"model":"m","reasoning":{"effort":"high"},"text":{"format":{"type":"json_schema","schema":{"type":"object"}}},"tools":[{"type":"namespace","name":"ns","tools":[{"type":"function","name":"f"}]},{"type":"custom","name":"apply_patch","format":{"type":"grammar","definition":"x"}},{"type":"web_search"},{"type":"local_shell"}],"input":[{"role":"user","content":"go"},{"type":"reasoning","summary":[{"type":"summary_text","text":"t"}],"encrypted_content":"claude-thinking:S"},{"type":"function_call","call_id":"a","namespace":"ns","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"a","output":"x"},{"type":"reasoning","summary":[],"encrypted_content":"claude-redacted:D"},{"type":"custom_tool_call","call_id":"b","name":"apply_patch","input":"p"},{"type":"custom_tool_call_output","call_id":"b","output":"ok"},{"type":"web_search_call","id":"ws","status":"completed","action":{"type":"search","query":"q"}}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := responsesToMessages(body, "claude")
		if err != nil {
			if out != nil || err.Error() == "" {
				t.Fatalf("error %v with output %s", err, out)
			}
			return
		}
		checkMessagesRequest(t, out)
		// What an attempt sends: the same, with at most four cache breakpoints.
		req, _ := decodeFields(body)
		full, tools, err := convertAgentRequest(&req, "claude", 0, true)
		if err != nil || tools == nil || len(tools.warnings) > maxWarnings {
			t.Fatalf("full conversion: %v", err)
		}
		checkMessagesRequest(t, full)
		var r messagesRequest
		_ = json.Unmarshal(full, &r)
		if n := countBreakpoints(&r); n > maxCacheBreakpoints {
			t.Fatalf("%d breakpoints: %s", n, full)
		}
	})
}

// checkMessagesRequest checks what Anthropic requires of a converted request: valid JSON,
// streamed, max_tokens above any thinking budget, alternating roles, no blank text, every
// tool_use answered at the start of the very next message and every tool_result answering
// the message before, unique ids, tools declared whenever tool blocks are present.
func checkMessagesRequest(t *testing.T, out []byte) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	var r messagesRequest
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !r.Stream || r.Model != "claude" || r.MaxTokens < 1 || len(r.Messages) == 0 {
		t.Fatalf("stream/model/max_tokens/messages wrong: %s", out)
	}
	if r.Thinking != nil && (r.Thinking.BudgetTokens < minThinkingBudget || r.Thinking.BudgetTokens >= r.MaxTokens) {
		t.Fatalf("thinking budget %d with max_tokens %d", r.Thinking.BudgetTokens, r.MaxTokens)
	}
	if r.ToolChoice != nil && len(r.Tools) == 0 {
		t.Fatalf("tool_choice without tools: %s", out)
	}
	seen := make(map[string]bool)
	hasToolBlocks := false
	for i, m := range r.Messages {
		if m.Role != roleUser && m.Role != roleAssistant || len(m.Content) == 0 {
			t.Fatalf("message %d: role %q, %d blocks", i, m.Role, len(m.Content))
		}
		if i > 0 && r.Messages[i-1].Role == m.Role {
			t.Fatalf("messages %d and %d have the same role", i-1, i)
		}
		var uses []string
		for _, b := range m.Content {
			switch b.Type {
			case blockText:
				if strings.TrimSpace(b.Text) == "" {
					t.Fatalf("message %d: blank text block", i)
				}
			case blockToolUse:
				hasToolBlocks = true
				if m.Role != roleAssistant || b.ID == "" || seen[b.ID] || !json.Valid(b.Input) || b.Input[0] != '{' {
					t.Fatalf("message %d: bad tool_use %+v", i, b)
				}
				seen[b.ID] = true
				uses = append(uses, b.ID)
			case blockToolResult:
				hasToolBlocks = true
			}
		}
		if len(uses) == 0 {
			continue
		}
		if i+1 >= len(r.Messages) {
			t.Fatalf("message %d: tool_use without a following message", i)
		}
		next := r.Messages[i+1].Content
		if len(next) < len(uses) {
			t.Fatalf("message %d: %d tool_use, next message has %d blocks", i, len(uses), len(next))
		}
		for k, id := range uses {
			if next[k].Type != blockToolResult || next[k].ToolUseID != id {
				t.Fatalf("message %d: tool_use %s not answered in order at the start of the next message", i, id)
			}
		}
		for _, b := range next[len(uses):] {
			if b.Type == blockToolResult {
				t.Fatalf("message %d: an extra tool_result follows", i+1)
			}
		}
	}
	// A tool_result must answer the message before it (checked above for the answered ones).
	for i, m := range r.Messages {
		for k, b := range m.Content {
			if b.Type != blockToolResult {
				continue
			}
			if i == 0 || k >= len(r.Messages[i-1].Content) {
				t.Fatalf("message %d: orphan tool_result %s", i, b.ToolUseID)
			}
		}
	}
	if hasToolBlocks && len(r.Tools) == 0 {
		t.Fatalf("tool blocks without tools: %s", out)
	}
}

func FuzzAnthropicStream(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "stream", "*.anthropic.sse"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
		f.Add(b, uint8(9))
	}
	f.Add([]byte("data: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":\"\\u0000\",\"name\":\"\\\"\"}}\n\ndata: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\ud83d\"}}\n\n"), uint8(3))
	f.Add([]byte("event: error\ndata: {\"error\":{\"type\":1}}\n\n"), uint8(1))
	f.Add([]byte(convAgentStream), uint8(7))
	// Found by fuzzing: max_tokens without message_start nor message_stop.
	f.Add([]byte(`data:{"tYpe":"message_delta","deltA":{"stop_reAson":"max_tokens"}}`), uint8(0x15))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		whole, s := convertFed(stream, 0)
		res := checkResponsesStream(t, whole)
		if got, _ := convertFed(stream, int(chunk)); !bytes.Equal(got, whole) {
			t.Fatalf("output depends on the chunking (%d)", chunk)
		}
		if !bytes.Equal(s.responseJSON(), res.final) {
			t.Fatalf("responseJSON differs from the terminal event's response")
		}
		if u := s.anthropicUsage(); u != nil && !json.Valid(u) {
			t.Fatalf("usage %s", u)
		}
	})
}
