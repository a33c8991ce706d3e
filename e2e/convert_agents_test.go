package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Codex on an anthropic group (docs/design.md, "Conversion rules for agents"), through the
// real Traefik: a Codex-shaped Responses request with namespaced MCP tools, the custom
// apply_patch tool and web_search reaches Claude with flat tools, the server web-search
// tool and cache breakpoints; the answer's thinking, namespaced call and patch come back as
// Codex's items; the second turn restores the signed thinking block and its record shows
// the cache read.

const (
	agentSig        = "EqQBCgIYAhIMsignature+/=="
	agentPatchInput = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch"
)

// agentToolStream answers with signed thinking, a namespaced MCP call and an apply_patch call.
var agentToolStream = anthropicSSE(
	"message_start", evStart,
	"content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}`,
	"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Open an issue, then patch."}}`,
	"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"`+agentSig+`"}}`,
	"content_block_stop", `{"type":"content_block_stop","index":0}`,
	"content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_mcp","name":"mcp__github__create_issue","input":{}}}`,
	"content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"title\":\"bug\"}"}}`,
	"content_block_stop", `{"type":"content_block_stop","index":1}`,
	"content_block_start", `{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_patch","name":"apply_patch","input":{}}}`,
	"content_block_delta", `{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"input\":\"*** Begin Patch\\n*** Add File: a.txt\\n+hi\\n*** End Patch\"}"}}`,
	"content_block_stop", `{"type":"content_block_stop","index":2}`,
	"message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":12}}`,
	"message_stop", `{"type":"message_stop"}`,
)

const codexTools = `[{"type":"function","name":"shell","description":"Run a command","strict":false,"parameters":{"type":"object","properties":{"command":{"type":"array","items":{"type":"string"}}},"required":["command"]}},` +
	`{"type":"custom","name":"apply_patch","description":"Edit files with a patch.","format":{"type":"grammar","syntax":"lark","definition":"start: begin_patch hunk+ end_patch"}},` +
	`{"type":"web_search","external_web_access":true},{"type":"local_shell"},` +
	`{"type":"namespace","name":"mcp__github","description":"GitHub MCP server","tools":[{"type":"function","name":"create_issue","description":"Open an issue","strict":false,"parameters":{"type":"object","properties":{"title":{"type":"string"}}}}]}]`

const codexFirstInput = `[{"type":"message","role":"developer","content":[{"type":"input_text","text":"<permissions>workspace-write</permissions>"}]},` +
	`{"type":"message","role":"user","content":[{"type":"input_text","text":"File a bug and add a.txt"}]}]`

func codexBody(input string) string {
	return `{"model":"claude-sonnet-4-5","instructions":"You are Codex.","input":` + input + `,"tools":` + codexTools +
		`,"tool_choice":"auto","parallel_tool_calls":true,"reasoning":{"effort":"medium","summary":"auto"},"store":false,"stream":true,` +
		`"include":["reasoning.encrypted_content"],"prompt_cache_key":"conv-agents"}`
}

// codexTurn posts a Codex-shaped streamed request and returns the completed response's output.
func codexTurn(t *testing.T, key, body string) []json.RawMessage {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctxT(t), "POST", gw.GatewayURL+"/v1/responses", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") || !strings.Contains(line, `"type":"response.completed"`) {
			continue
		}
		var ev struct {
			Response struct {
				Output []json.RawMessage `json:"output"`
			} `json:"response"`
		}
		if err := json.Unmarshal([]byte(line[len("data: "):]), &ev); err != nil {
			t.Fatal(err)
		}
		return ev.Response.Output
	}
	t.Fatalf("no response.completed (%v)", sc.Err())
	return nil
}

func TestConvertCodexAgentOnAnthropicGroup(t *testing.T) {
	cred := unique("sk-antagent")
	programCredential(t, cred, obj{"body": agentToolStream})
	tn, accts := anthropicTenant(t, nil, accountSpec{Credential: cred})

	// Turn 1: the tools reach Claude flat, as the server web search, with breakpoints.
	out := codexTurn(t, tn.Key, codexBody(codexFirstInput))
	reqs := anthropicRequestsFor(t, cred)
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(reqs))
	}
	var sent struct {
		Tools []struct {
			Type        string          `json:"type"`
			Name        string          `json:"name"`
			Description string          `json:"description"`
			InputSchema json.RawMessage `json:"input_schema"`
		} `json:"tools"`
		Thinking *struct {
			BudgetTokens int64 `json:"budget_tokens"`
		} `json:"thinking"`
		MaxTokens int64 `json:"max_tokens"`
	}
	if err := json.Unmarshal([]byte(reqs[0].Body), &sent); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, tool := range sent.Tools {
		names[tool.Name] = tool.Type
		if tool.Name == "apply_patch" && (!strings.Contains(tool.Description, "start: begin_patch") ||
			!strings.Contains(string(tool.InputSchema), `"input":{"type":"string"`)) {
			t.Errorf("apply_patch tool = %+v", tool)
		}
	}
	if len(sent.Tools) != 4 || names["shell"] != "" || names["mcp__github__create_issue"] != "" || names["web_search"] != "web_search_20250305" {
		t.Errorf("upstream tools = %+v", sent.Tools)
	}
	if _, ok := names["apply_patch"]; !ok {
		t.Errorf("apply_patch missing: %+v", sent.Tools)
	}
	if n := strings.Count(reqs[0].Body, `"cache_control":{"type":"ephemeral"}`); n != 3 { // last tool, system, the user turn
		t.Errorf("turn 1 has %d breakpoints, want 3: %s", n, reqs[0].Body)
	}
	if sent.Thinking == nil || sent.Thinking.BudgetTokens < 1024 || sent.Thinking.BudgetTokens >= sent.MaxTokens {
		t.Errorf("thinking %+v with max_tokens %d", sent.Thinking, sent.MaxTokens)
	}

	// The answer: a reasoning item carrying the signature, the MCP call by its namespace and
	// name, the patch as a custom_tool_call with the raw input.
	if len(out) != 3 {
		t.Fatalf("output items = %s", out)
	}
	var rs, fc, ctc map[string]any
	_ = json.Unmarshal(out[0], &rs)
	_ = json.Unmarshal(out[1], &fc)
	_ = json.Unmarshal(out[2], &ctc)
	if rs["type"] != "reasoning" || rs["encrypted_content"] != "claude-thinking:"+agentSig {
		t.Errorf("reasoning item = %s", out[0])
	}
	if fc["type"] != "function_call" || fc["name"] != "create_issue" || fc["namespace"] != "mcp__github" ||
		fc["call_id"] != "toolu_mcp" || fc["arguments"] != `{"title":"bug"}` {
		t.Errorf("function_call item = %s", out[1])
	}
	if ctc["type"] != "custom_tool_call" || ctc["name"] != "apply_patch" || ctc["call_id"] != "toolu_patch" || ctc["input"] != agentPatchInput {
		t.Errorf("custom_tool_call item = %s", out[2])
	}

	// Turn 2: the history with the items as Codex replays them and the tools' outputs; the
	// fake reports the prompt it cached on turn 1 as read.
	programCredential(t, cred, obj{"prompt_cache": 900, "usage": obj{"input_tokens": 50, "output_tokens": 5}})
	second := strings.TrimSuffix(codexFirstInput, "]") + "," + string(out[0]) + "," + string(out[1]) + "," + string(out[2]) +
		`,{"type":"function_call_output","call_id":"toolu_mcp","output":"issue #1"},{"type":"custom_tool_call_output","call_id":"toolu_patch","output":"Success. Updated a.txt"}]`
	codexTurn(t, tn.Key, codexBody(second))
	reqs = anthropicRequestsFor(t, cred)
	if len(reqs) != 2 {
		t.Fatalf("upstream got %d requests, want 2", len(reqs))
	}
	body2 := reqs[1].Body
	for _, want := range []string{
		`{"type":"thinking","thinking":"Open an issue, then patch.","signature":"` + agentSig + `"},{"type":"tool_use","id":"toolu_mcp","name":"mcp__github__create_issue","input":{"title":"bug"}}`,
		`{"type":"tool_use","id":"toolu_patch","name":"apply_patch","input":{"input":"*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch"}}`,
		`{"type":"tool_result","tool_use_id":"toolu_patch","content":"Success. Updated a.txt"`,
		`"thinking":{"type":"enabled"`,
	} {
		if !strings.Contains(body2, want) {
			t.Errorf("turn 2 upstream body lacks %s:\n%s", want, body2)
		}
	}
	if n := strings.Count(body2, `"cache_control"`); n != 4 {
		t.Errorf("turn 2 has %d breakpoints, want 4", n)
	}

	// The records: turn 2 read the cache; both name local_shell, which Claude cannot run.
	recs := usageFor(t, tn.KeyID, 2)
	var reads []int64
	for _, rec := range recs {
		reads = append(reads, num(rec, "cache_read_tokens"))
		w, _ := json.Marshal(rec["warnings"])
		if !strings.Contains(string(w), `tools[3]: tool type \"local_shell\" has no Claude equivalent`) || num(rec, "status") != 200 {
			t.Errorf("record = %v", rec)
		}
	}
	if !(reads[0] == 900 && reads[1] == 5) && !(reads[0] == 5 && reads[1] == 900) { // turn 1: evStart's 5
		t.Errorf("cache reads of the two turns = %v, want 5 and 900", reads)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
