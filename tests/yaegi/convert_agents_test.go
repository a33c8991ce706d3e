package yaegi

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// agentsGolden is plugin/convert/testdata/agents.golden.json, written by the native
// TestConvertAgentGolden.
type agentsGolden struct {
	Requests []struct {
		Name     string `json:"name"`
		Body     string `json:"body"`
		Output   string `json:"output"`
		Warnings string `json:"warnings"`
	} `json:"requests"`
	Stream struct {
		Input  string   `json:"input"`
		Tools  []string `json:"tools"`
		Output string   `json:"output"`
	} `json:"stream"`
}

func readAgentsGolden(t *testing.T) agentsGolden {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "plugin", "convert", "testdata", "agents.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g agentsGolden
	if err := json.Unmarshal(raw, &g); err != nil || len(g.Requests) < 8 {
		t.Fatalf("%d cases: %v", len(g.Requests), err)
	}
	return g
}

// Interpreted, the agents' conversion (namespace tools flattened, custom tools, web search,
// cache breakpoints, structured output, restored thinking, warnings) is exactly the native
// one, for every case of the native table.
func TestConvertAgentRequestsUnderYaegi(t *testing.T) {
	fns := loadConvertProbe(t)
	g := readAgentsGolden(t)
	want := map[string]string{ // what each rule must show, beyond equality with the native output
		"namespace tools become flat tools, the history's calls by their flat names":                        `"name":"mcp__gh__issue"`,
		"custom tool: one string input, the grammar in the description; its call and output in the history": `"input":{"input":"*** Begin Patch\n*** End Patch"}`,
		"at most four breakpoints: last tool, system, the last two user turns":                              `"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}]`,
		"reasoning items restore thinking and redacted blocks before the tool_use; thinking stays on":       `{"type":"thinking","thinking":"I think","signature":"SIG=="},{"type":"redacted_thinking","data":"DATA"},{"type":"tool_use"`,
		"web_search becomes the server tool; tools with no Claude equivalent are warnings":                  `"type":"web_search_20250305"`,
		"text.format json_schema is Claude's structured output; json_object a warning":                      `"output_config":{"format":{"type":"json_schema"`,
	}
	for _, c := range g.Requests {
		out, warnings, errMsg := fns.agent([]byte(c.Body), "claude")
		if errMsg != "" || string(out) != c.Output || warnings != c.Warnings {
			t.Errorf("%s: interpreted\n%s %q %s\nnative\n%s %q", c.Name, out, warnings, errMsg, c.Output, c.Warnings)
		}
		if w, ok := want[c.Name]; ok && !strings.Contains(string(out), w) {
			t.Errorf("%s: lacks %s: %s", c.Name, w, out)
		}
		if n := strings.Count(string(out), `"cache_control"`); n > 4 {
			t.Errorf("%s: %d breakpoints", c.Name, n)
		}
	}
}

// Interpreted, the agent stream (signed thinking, redacted thinking, a web search, a
// namespaced call and a custom call) converts to the native response at every read size,
// and its reasoning and call items, sent back, restore the signed thinking block before the
// flat tool_use.
func TestConvertAgentStreamUnderYaegi(t *testing.T) {
	fns := loadConvertProbe(t)
	g := readAgentsGolden(t)
	for _, chunk := range []int{0, 3, 64} {
		got := fns.agentStream([]byte(g.Stream.Input), chunk, g.Stream.Tools)
		if string(got) != g.Stream.Output {
			t.Fatalf("chunk %d: interpreted\n%s\nnative\n%s", chunk, got, g.Stream.Output)
		}
	}
	var resp struct {
		Output []json.RawMessage `json:"output"`
	}
	if err := json.Unmarshal([]byte(g.Stream.Output), &resp); err != nil || len(resp.Output) != 5 {
		t.Fatalf("output: %v %s", err, g.Stream.Output)
	}
	for i, w := range []string{`"encrypted_content":"claude-thinking:EqQB+sig/=="`, `"type":"web_search_call"`,
		`"name":"issue","namespace":"mcp__gh"`, `"type":"custom_tool_call"`} {
		idx := []int{0, 2, 3, 4}[i]
		if !strings.Contains(string(resp.Output[idx]), w) {
			t.Errorf("item %d lacks %s: %s", idx, w, resp.Output[idx])
		}
	}
	body := `{"model":"gpt-5","reasoning":{"effort":"medium"},"tools":[{"type":"namespace","name":"mcp__gh","tools":[{"type":"function","name":"issue"}]},{"type":"custom","name":"apply_patch"}],"input":[{"role":"user","content":"q"},` +
		string(resp.Output[0]) + `,` + string(resp.Output[3]) + `,` + string(resp.Output[4]) +
		`,{"type":"function_call_output","call_id":"toolu_ns","output":"ok"},{"type":"custom_tool_call_output","call_id":"toolu_p","output":"applied"}]}`
	out, _, errMsg := fns.agent([]byte(body), "claude")
	if errMsg != "" {
		t.Fatal(errMsg)
	}
	for _, w := range []string{
		`{"type":"thinking","thinking":"Plan \"it\"","signature":"EqQB+sig/=="},{"type":"tool_use","id":"toolu_ns","name":"mcp__gh__issue","input":{"t":1}},{"type":"tool_use","id":"toolu_p"`,
		`"thinking":{"type":"enabled"`,
		`{"type":"tool_use","id":"toolu_p","name":"apply_patch","input":{"input":"*** Begin Patch\n+x \"q\"\n*** End Patch"}}`,
		`{"type":"tool_result","tool_use_id":"toolu_p","content":"applied"`,
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("second turn lacks %s:\n%s", w, out)
		}
	}
}
