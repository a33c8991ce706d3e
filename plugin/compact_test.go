package plugin

import (
	"os"
	"path/filepath"

	"github.com/poolgate/poolgate/plugin/convert"

	"encoding/json"
	"strings"
	"testing"
)

const compactBody = `{"model":"gpt-5","instructions":"You are Codex.","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"fix the bug"}]},` +
	`{"type":"function_call","call_id":"c1","name":"shell","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"ok"},` +
	`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"done"}]},{"type":"message","role":"user","content":[{"type":"input_text","text":"thanks"}]}],` +
	`"tools":[{"type":"function","name":"shell"}],"parallel_tool_calls":true}`

// TestCompactOnAnthropic: /v1/responses/compact on an anthropic group is one Messages call
// asking for a summary (the conversation, the prompt last, no tools but the history's
// placeholders), answered as {"output": [user messages..., summary]}.
func TestCompactOnAnthropic(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("ant-1", upstreamReply{status: 200, events: []string{anthMsgStart, anthTextStart, anthHello, anthWorld, anthTextStop,
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\n", anthMsgStop}})
	p, stub := newConvertedPlugin(t, up, stubAccount{id: 1, apiKey: "ant-1", upstreamModel: "claude-up"})

	rec := do(p, pathResponsesCompact, compactBody, nil)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("status %d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var got struct {
		Output []struct {
			Type    string `json:"type"`
			Role    string `json:"role"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Output) != 3 {
		t.Fatalf("output %s (%v)", rec.Body, err)
	}
	last := got.Output[2]
	if got.Output[0].Content[0].Text != "fix the bug" || got.Output[1].Content[0].Text != "thanks" ||
		last.Role != "user" || last.Content[0].Type != "input_text" || last.Content[0].Text != compactSummaryPrefix+"Hello world" {
		t.Errorf("compacted history %s", rec.Body)
	}
	reqs := up.recorded()
	if len(reqs) != 1 || reqs[0].path != pathMessages {
		t.Fatalf("upstream requests %+v", reqs)
	}
	var sent struct {
		Messages []struct {
			Role    string `json:"role"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"messages"`
		Tools      []json.RawMessage `json:"tools"`
		ToolChoice *struct {
			Type string `json:"type"`
		} `json:"tool_choice"`
	}
	if err := json.Unmarshal(reqs[0].body, &sent); err != nil {
		t.Fatal(err)
	}
	lastMsg := sent.Messages[len(sent.Messages)-1]
	if lastMsg.Role != convert.RoleUser || !strings.Contains(lastMsg.Content[len(lastMsg.Content)-1].Text, "Compact this conversation") {
		t.Errorf("summary prompt missing: %s", reqs[0].body)
	}
	if len(sent.Tools) != 1 || sent.ToolChoice == nil || sent.ToolChoice.Type != "none" {
		t.Errorf("tools %+v choice %+v: want the history's placeholder only, not callable", sent.Tools, sent.ToolChoice)
	}
	rep := stub.waitReport()
	if rep.Path != pathResponsesCompact || rep.UsageFormat != usageAnthropic || rep.Status != 200 || len(rep.Usage) == 0 {
		t.Errorf("report %+v", rep)
	}
}

// TestCompactOnOpenAI: on an openai group the request passes through to
// <base_url>/v1/responses/compact and its usage is reported like a Responses call's.
func TestCompactOnOpenAI(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	answer := `{"id":"resp_c","object":"response.compaction","output":[{"type":"compaction","encrypted_content":"x"}],"usage":{"input_tokens":100,"output_tokens":10,"total_tokens":110}}`
	up.set("oa-1", upstreamReply{status: 200, headers: map[string]string{"Content-Type": "application/json"}, body: answer})
	stub := newContractStub(t, stubAccount{id: 1, apiKey: "oa-1", baseURL: up.srv.URL})
	p := newTestPlugin(t, stub, nil)

	rec := do(p, pathResponsesCompact, compactBody, nil)
	if rec.Code != 200 || rec.Body.String() != answer {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	reqs := up.recorded()
	if len(reqs) != 1 || reqs[0].path != pathResponsesCompact {
		t.Fatalf("upstream requests %+v", reqs)
	}
	rep := stub.waitReport()
	if rep.Path != pathResponsesCompact || rep.UsageFormat != usageResponses || !strings.Contains(string(rep.Usage), `"input_tokens":100`) {
		t.Errorf("report %+v usage %s", rep, rep.Usage)
	}
}

// TestConvertedAgentThroughPlugin: a Codex-shaped non-streaming request through the plugin:
// the attempt sends flat tools with breakpoints, the answer maps the calls back, and the
// report carries the conversion's warnings.
func TestConvertedAgentThroughPlugin(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	var events []string
	for _, block := range strings.Split(agentStream(t), "\n\n") {
		if strings.TrimSpace(block) != "" {
			events = append(events, block+"\n\n")
		}
	}
	up.set("ant-1", upstreamReply{status: 200, events: events})
	p, stub := newConvertedPlugin(t, up, stubAccount{id: 1, apiKey: "ant-1", upstreamModel: "claude-up"})
	body := `{"model":"gpt-5","input":"go","reasoning":{"effort":"low"},"tools":[` +
		`{"type":"namespace","name":"mcp__gh","tools":[{"type":"function","name":"issue"}]},{"type":"custom","name":"apply_patch"},` +
		`{"type":"web_search"},{"type":"image_generation"}]}`
	rec := do(p, pathResponses, body, nil)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	out := rec.Body.String()
	for _, want := range []string{`"name":"issue","namespace":"mcp__gh"`, `"type":"custom_tool_call"`,
		`"encrypted_content":"claude-thinking:EqQB+sig/=="`, `"type":"web_search_call"`} {
		if !strings.Contains(out, want) {
			t.Errorf("response lacks %s: %s", want, out)
		}
	}
	reqs := up.recorded()
	if len(reqs) != 1 || !strings.Contains(string(reqs[0].body), `"name":"mcp__gh__issue"`) ||
		!strings.Contains(string(reqs[0].body), `"type":"web_search_20250305"`) || strings.Count(string(reqs[0].body), `"cache_control"`) != 2 {
		t.Errorf("upstream body %s", reqs[0].body)
	}
	rep := stub.waitReport()
	if len(rep.Warnings) != 1 || rep.Warnings[0] != `tools[3]: tool type "image_generation" has no Claude equivalent; left out` {
		t.Errorf("warnings %q", rep.Warnings)
	}
}

// agentStream is the conversion tests' agent stream (a signed thinking block, a namespaced
// function call, a custom tool call), from their golden file.
func agentStream(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("convert", "testdata", "agents.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Stream struct {
			Input string `json:"input"`
		} `json:"stream"`
	}
	if err := json.Unmarshal(b, &g); err != nil || g.Stream.Input == "" {
		t.Fatalf("agents.golden.json: %v", err)
	}
	return g.Stream.Input
}
