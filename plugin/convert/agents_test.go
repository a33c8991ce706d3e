package convert

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// convAgentCase: a Responses body converted with cache breakpoints (what an attempt sends);
// want holds the converted members besides model and stream.
type convAgentCase struct {
	name     string
	body     string
	want     string
	warnings []string
}

const convLong = "a_very_long_namespace_name_from_an_mcp_server_that_goes_on_and_on"

var convAgentCases = []convAgentCase{
	{name: "namespace tools become flat tools, the history's calls by their flat names",
		body: `"input":[{"role":"user","content":"go"},{"type":"function_call","call_id":"c1","namespace":"mcp__gh","name":"issue","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"ok"}],` +
			`"tools":[{"type":"namespace","name":"mcp__gh","description":"GitHub","tools":[{"type":"function","name":"issue","description":"Open","strict":false,"parameters":{"type":"object","properties":{}}}]}]`,
		want: `"max_tokens":8192,"tools":[{"name":"mcp__gh__issue","description":"GitHub\n\nOpen","input_schema":{"type":"object","properties":{}},"cache_control":{"type":"ephemeral"}}],` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"go","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"mcp__gh__issue","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":"ok","cache_control":{"type":"ephemeral"}}]}]`},
	{name: "a custom tool in a namespace is flat too; its call in the history by namespace and name",
		body: `"input":[{"role":"user","content":"go"},{"type":"custom_tool_call","call_id":"x1","namespace":"ext","name":"edit","input":"raw"},{"type":"custom_tool_call_output","call_id":"x1","output":"ok"}],"tools":[{"type":"namespace","name":"ext","tools":[{"type":"custom","name":"edit"},{"type":"web_search"}]}]`,
		want: `"max_tokens":8192,"tools":[{"name":"ext__edit","description":` + convCustomDesc + `,"input_schema":` + string(customToolSchema) + `,"cache_control":{"type":"ephemeral"}}],` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"go","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"tool_use","id":"x1","name":"ext__edit","input":{"input":"raw"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"x1","content":"ok","cache_control":{"type":"ephemeral"}}]}]`,
		warnings: []string{`tools[0].tools[1]: tool type "web_search" in a namespace has no Claude equivalent; left out`}},
	{name: "tools declared in an additional_tools input item (Codex) are tools; their item is no message",
		body: `"input":[{"type":"additional_tools","id":"at_1","role":"developer","tools":[{"type":"namespace","name":"functions","description":"","tools":[{"type":"custom","name":"exec","description":"Run JS"},{"type":"function","name":"wait","parameters":{"type":"object","properties":{}}}]}]},{"role":"user","content":"go"},{"type":"custom_tool_call","call_id":"e1","namespace":"functions","name":"exec","input":"1"},{"type":"custom_tool_call_output","call_id":"e1","output":"ok"}],` +
			`"tools":[{"type":"function","name":"shell"}]`,
		want: `"max_tokens":8192,"tools":[{"name":"shell","input_schema":{"type":"object","properties":{}}},{"name":"functions__exec","description":"Run JS\n\nPass the tool's raw input, unquoted and unescaped beyond JSON, as the string field \"input\".","input_schema":` + string(customToolSchema) + `},{"name":"functions__wait","input_schema":{"type":"object","properties":{}},"cache_control":{"type":"ephemeral"}}],` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"go","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"tool_use","id":"e1","name":"functions__exec","input":{"input":"1"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"e1","content":"ok","cache_control":{"type":"ephemeral"}}]}]`},
	{name: "a flat name over 64 characters gets a short deterministic form",
		body: `"input":"hi","tools":[{"type":"namespace","name":"` + convLong + `","tools":[{"type":"function","name":"tool"}]}]`,
		want: `"max_tokens":8192,"tools":[{"name":"a_very_long_namespace_name_from_an_mcp_server_that_goes_abb8e0c7","input_schema":{"type":"object","properties":{}},"cache_control":{"type":"ephemeral"}}],` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]`},
	{name: "custom tool: one string input, the grammar in the description; its call and output in the history",
		body: `"instructions":"sys","input":[{"role":"user","content":"edit"},{"type":"custom_tool_call","call_id":"p1","name":"apply_patch","input":"*** Begin Patch\n*** End Patch"},{"type":"custom_tool_call_output","call_id":"p1","output":"Done"}],` +
			`"tools":[{"type":"custom","name":"apply_patch","description":"Patch files.","format":{"type":"grammar","syntax":"lark","definition":"start: x"}}]`,
		want: `"max_tokens":8192,"system":[{"type":"text","text":"sys","cache_control":{"type":"ephemeral"}}],` +
			`"tools":[{"name":"apply_patch","description":"Patch files.\n\nPass the tool's raw input, unquoted and unescaped beyond JSON, as the string field \"input\". The input must match this lark grammar:\nstart: x","input_schema":` + string(customToolSchema) + `,"cache_control":{"type":"ephemeral"}}],` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"edit","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"tool_use","id":"p1","name":"apply_patch","input":{"input":"*** Begin Patch\n*** End Patch"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"p1","content":"Done","cache_control":{"type":"ephemeral"}}]}]`},
	{name: "web_search becomes the server tool; tools with no Claude equivalent are warnings",
		body: `"input":"hi","tools":[{"type":"web_search","filters":{"allowed_domains":["go.dev"]}},{"type":"local_shell"},{"type":"tool_search","execution":"client"},{"type":"web_search_preview"}]`,
		want: `"max_tokens":8192,"tools":[{"type":"web_search_20250305","name":"web_search","allowed_domains":["go.dev"],"cache_control":{"type":"ephemeral"}}],` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]`,
		warnings: []string{`tools[1]: tool type "local_shell" has no Claude equivalent; left out`, `tools[2]: tool type "tool_search" has no Claude equivalent; left out`,
			`tools[3]: a second web_search tool; Claude takes one, the first is used`}},
	{name: "at most four breakpoints: last tool, system, the last two user turns",
		body: `"instructions":"s","input":[{"role":"user","content":"1"},{"role":"assistant","content":"a"},{"role":"user","content":"2"},{"role":"assistant","content":"b"},{"role":"user","content":"3"}],"tools":[{"type":"function","name":"f"},{"type":"function","name":"g"}]`,
		want: `"max_tokens":8192,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],` +
			`"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}},{"name":"g","input_schema":{"type":"object","properties":{}},"cache_control":{"type":"ephemeral"}}],` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"1"}]},{"role":"assistant","content":[{"type":"text","text":"a"}]},{"role":"user","content":[{"type":"text","text":"2","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"text","text":"b"}]},{"role":"user","content":[{"type":"text","text":"3","cache_control":{"type":"ephemeral"}}]}]`},
	{name: "text.format json_schema is Claude's structured output; json_object a warning",
		body: `"input":"hi","text":{"format":{"type":"json_schema","name":"x","strict":true,"schema":{"type":"object","properties":{"a":{"type":"string"}}}}}`,
		want: `"max_tokens":8192,"output_config":{"format":{"type":"json_schema","schema":{"type":"object","properties":{"a":{"type":"string"}}}}},` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]`},
	{name: "text.format json_object has no Claude mode",
		body:     `"input":"hi","text":{"format":{"type":"json_object"}}`,
		want:     `"max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]`,
		warnings: []string{`text.format "json_object" has no Claude equivalent; left out`}},
	{name: "reasoning items restore thinking and redacted blocks before the tool_use; thinking stays on",
		body: `"reasoning":{"effort":"low"},"input":[{"role":"user","content":"q"},{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"I think"}],"encrypted_content":"claude-thinking:SIG=="},{"type":"reasoning","id":"rs_2","summary":[],"encrypted_content":"claude-redacted:DATA"},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"r"}],"tools":[{"type":"function","name":"f"}]`,
		want: `"max_tokens":9216,"thinking":{"type":"enabled","budget_tokens":1024},"tools":[{"name":"f","input_schema":{"type":"object","properties":{}},"cache_control":{"type":"ephemeral"}}],` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"q","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"thinking","thinking":"I think","signature":"SIG=="},{"type":"redacted_thinking","data":"DATA"},{"type":"tool_use","id":"c","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":"r","cache_control":{"type":"ephemeral"}}]}]`},
	{name: "thinking whose call went unanswered is left out with it",
		body: `"reasoning":{"effort":"low"},"input":[{"role":"user","content":"q"},{"type":"reasoning","summary":[{"type":"summary_text","text":"t"}],"encrypted_content":"claude-thinking:S"},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"role":"user","content":"again"}],"tools":[{"type":"function","name":"f"}]`,
		want: `"max_tokens":9216,"thinking":{"type":"enabled","budget_tokens":1024},"tools":[{"name":"f","input_schema":{"type":"object","properties":{}},"cache_control":{"type":"ephemeral"}}],` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"q"},{"type":"text","text":"again","cache_control":{"type":"ephemeral"}}]}]`},
	{name: "history items of tools Claude lacks are warnings; web_search_call is left out quietly",
		body:     `"input":[{"role":"user","content":"q"},{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"x"}},{"type":"local_shell_call","call_id":"l","action":{"type":"exec","command":["ls"]}},{"role":"assistant","content":"a"},{"role":"user","content":"r"}]`,
		want:     `"max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"q","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"text","text":"a"}]},{"role":"user","content":[{"type":"text","text":"r","cache_control":{"type":"ephemeral"}}]}]`,
		warnings: []string{`input[2]: item type "local_shell_call" has no Claude equivalent; left out`}},
	{name: "thinking off: restored thinking is left out; OpenAI's encrypted reasoning is left out",
		body: `"input":[{"role":"user","content":"q"},{"type":"reasoning","summary":[],"encrypted_content":"gAAAAABopenai"},{"type":"reasoning","summary":[{"type":"summary_text","text":"t"}],"encrypted_content":"claude-thinking:S"},{"role":"assistant","content":"a"},{"role":"user","content":"r"}]`,
		want: `"max_tokens":8192,"messages":[{"role":"user","content":[{"type":"text","text":"q","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"text","text":"a"}]},{"role":"user","content":[{"type":"text","text":"r","cache_control":{"type":"ephemeral"}}]}]`},
}

func TestConvertAgentRequests(t *testing.T) {
	t.Parallel()
	for _, tc := range convAgentCases {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, ok := decodeFields([]byte(convBody(tc.body)))
			if !ok {
				t.Fatal("body does not decode")
			}
			got, tools, err := convertAgentRequest(&req, "claude", 0, true)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			convJSONEqual(t, got, `{"model":"claude","stream":true,`+tc.want+`}`)
			if strings.Join(tools.warnings, "|") != strings.Join(tc.warnings, "|") {
				t.Errorf("warnings %q, want %q", tools.warnings, tc.warnings)
			}
			checkMessagesRequest(t, got)
			if n := countBreakpointsIn(t, got); n > maxCacheBreakpoints {
				t.Errorf("%d breakpoints", n)
			}
		})
	}
}

// countBreakpointsIn counts cache_control members anywhere in a converted body.
func countBreakpointsIn(t *testing.T, body []byte) int {
	t.Helper()
	return strings.Count(string(body), `"cache_control":`)
}

func TestConvToolsFlatNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, namespace, tool, want string
		kind                        int
	}{
		{"plain", "", "shell", "shell", toolFunction},
		{"namespaced", "mcp__fs", "read", "mcp__fs__read", toolFunction},
		{"characters Anthropic refuses", "my.server", "do it", "my_server__do_it", toolFunction},
		{"custom", "", "apply_patch", "apply_patch", toolCustom},
	}
	m := newConvTools()
	for _, tc := range cases {
		got := m.add(tc.kind, tc.namespace, tc.tool)
		if got != tc.want {
			t.Errorf("%s: flat %q, want %q", tc.name, got, tc.want)
		}
		back := m.lookup(got)
		if back.namespace != tc.namespace || back.name != tc.tool || back.kind != tc.kind {
			t.Errorf("%s: mapped back to %+v", tc.name, back)
		}
	}
	long := m.add(toolFunction, convLong, "tool")
	if len(long) != maxToolName || m.add(toolFunction, convLong, "tool") != long {
		t.Errorf("long name %q (%d) not bounded or not stable", long, len(long))
	}
	if other := m.add(toolFunction, convLong, "tool2"); other == long || len(other) > maxToolName {
		t.Errorf("distinct long names collide: %q", other)
	}
}

// convAgentStream is an Anthropic stream answering with a thinking block (signed), a
// redacted block, a web search, a namespaced tool call and a custom tool call.
const convAgentStream = `event: message_start
data: {"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":90}}}

data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Plan \"it\""}}

data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB+sig/=="}}

data: {"type":"content_block_stop","index":0}

data: {"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"REDACTED=="}}

data: {"type":"content_block_stop","index":1}

data: {"type":"content_block_start","index":2,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}

data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"query\":"}}

data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"\"go yaegi\"}"}}

data: {"type":"content_block_stop","index":2}

data: {"type":"content_block_start","index":3,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]}}

data: {"type":"content_block_stop","index":3}

data: {"type":"content_block_start","index":4,"content_block":{"type":"tool_use","id":"toolu_ns","name":"mcp__gh__issue","input":{}}}

data: {"type":"content_block_delta","index":4,"delta":{"type":"input_json_delta","partial_json":"{\"t\":1}"}}

data: {"type":"content_block_stop","index":4}

data: {"type":"content_block_start","index":5,"content_block":{"type":"tool_use","id":"toolu_p","name":"apply_patch","input":{}}}

data: {"type":"content_block_delta","index":5,"delta":{"type":"input_json_delta","partial_json":"{\"input\": \"*** Begin Patch\\n+x \\\"q\\\"\\n"}}

data: {"type":"content_block_delta","index":5,"delta":{"type":"input_json_delta","partial_json":"*** End Patch\"}"}}

data: {"type":"content_block_stop","index":5}

data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}

data: {"type":"message_stop"}

`

func TestConvertAgentStream(t *testing.T) {
	t.Parallel()
	m := newConvTools()
	m.add(toolFunction, "mcp__gh", "issue")
	m.add(toolCustom, "", "apply_patch")
	want := []string{
		`{"id":"rs_X_0","type":"reasoning","summary":[{"type":"summary_text","text":"Plan \"it\""}],"encrypted_content":"claude-thinking:EqQB+sig/=="}`,
		`{"id":"rs_X_1","type":"reasoning","summary":[],"encrypted_content":"claude-redacted:REDACTED=="}`,
		`{"id":"ws_X_2","type":"web_search_call","status":"completed","action":{"type":"search","query":"go yaegi"}}`,
		`{"id":"fc_X_3","type":"function_call","status":"completed","arguments":"{\"t\":1}","call_id":"toolu_ns","name":"issue","namespace":"mcp__gh"}`,
		`{"id":"ctc_X_4","type":"custom_tool_call","status":"completed","call_id":"toolu_p","name":"apply_patch","input":"*** Begin Patch\n+x \"q\"\n*** End Patch"}`,
	}
	for _, chunked := range []bool{false, true} {
		s := newResponsesStream("gpt-5", "resp_X", 1)
		s.tools = m
		var events []byte
		if chunked {
			for i := 0; i < len(convAgentStream); i += 7 {
				end := i + 7
				if end > len(convAgentStream) {
					end = len(convAgentStream)
				}
				events = append(events, s.feed([]byte(convAgentStream[i:end]))...)
			}
		} else {
			events = append(events, s.feed([]byte(convAgentStream))...)
		}
		events = append(events, s.finish()...)
		if s.finalStatus() != statusCompleted {
			t.Fatalf("status %q", s.finalStatus())
		}
		var resp struct {
			Output []json.RawMessage `json:"output"`
		}
		if err := json.Unmarshal(s.responseJSON(), &resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.Output) != len(want) {
			t.Fatalf("chunked %v: %d items: %s", chunked, len(resp.Output), s.responseJSON())
		}
		for i, w := range want {
			convJSONEqual(t, resp.Output[i], w)
			checkItem(t, resp.Output[i])
		}
		if !strings.Contains(string(events), `"type":"response.output_item.done","sequence_number"`) {
			t.Errorf("no output_item.done events")
		}
	}
}

// TestReasoningRoundTrip: the reasoning item a converted stream returns, sent back as input
// in the next turn, is the same thinking block.
func TestReasoningRoundTrip(t *testing.T) {
	t.Parallel()
	s := newResponsesStream("gpt-5", "resp_X", 1)
	s.tools = newConvTools()
	s.tools.add(toolFunction, "mcp__gh", "issue")
	s.feed([]byte(convAgentStream))
	s.finish()
	var resp struct {
		Output []json.RawMessage `json:"output"`
	}
	if err := json.Unmarshal(s.responseJSON(), &resp); err != nil {
		t.Fatal(err)
	}
	input := `[{"role":"user","content":"q"},` + string(resp.Output[0]) + `,` + string(resp.Output[3]) +
		`,{"type":"function_call_output","call_id":"toolu_ns","output":"ok"}]`
	body := convBody(`"reasoning":{"effort":"medium"},"tools":[{"type":"namespace","name":"mcp__gh","tools":[{"type":"function","name":"issue"}]}],"input":` + input)
	req, _ := decodeFields([]byte(body))
	got, _, err := convertAgentRequest(&req, "claude", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), `{"type":"thinking","thinking":"Plan \"it\"","signature":"EqQB+sig/=="},{"type":"tool_use","id":"toolu_ns","name":"mcp__gh__issue","input":{"t":1}}`) {
		t.Errorf("thinking not restored before its tool_use: %s", got)
	}
	if !strings.Contains(string(got), `"thinking":{"type":"enabled"`) {
		t.Errorf("thinking turned off: %s", got)
	}
}

// convAgentGolden is plugin/convert/testdata/agents.golden.json: the agent cases' converted
// requests and the agent stream's response, as the native code produces them, for
// tests/yaegi to compare the interpreted conversion with.
type convAgentGolden struct {
	Requests []convAgentGoldenRequest `json:"requests"`
	Stream   convAgentGoldenStream    `json:"stream"`
}

type convAgentGoldenRequest struct {
	Name     string `json:"name"`
	Body     string `json:"body"`
	Output   string `json:"output"`
	Warnings string `json:"warnings"`
}

type convAgentGoldenStream struct {
	Input string `json:"input"`
	// Tools are the registered tools: "kind\x00namespace\x00name".
	Tools  []string `json:"tools"`
	Output string   `json:"output"`
}

var convAgentStreamTools = []string{"0\x00mcp__gh\x00issue", "1\x00\x00apply_patch"}

// agentStreamResponse converts convAgentStream with the given tools, read chunk bytes at a
// time, to its final response object (as the Yaegi probe does).
func agentStreamResponse(input []byte, chunk int, specs []string) []byte {
	s := newResponsesStream("gpt-5", "resp_X", 1)
	s.tools = newConvTools()
	for _, spec := range specs {
		f := strings.SplitN(spec, "\x00", 3)
		kind := toolFunction
		if f[0] == "1" {
			kind = toolCustom
		}
		s.tools.add(kind, f[1], f[2])
	}
	for len(input) > 0 {
		k := len(input)
		if chunk > 0 && chunk < k {
			k = chunk
		}
		s.feed(input[:k])
		input = input[k:]
	}
	s.finish()
	return s.responseJSON()
}

func TestConvertAgentGolden(t *testing.T) {
	t.Parallel()
	var g convAgentGolden
	for _, tc := range convAgentCases {
		body := convBody(tc.body)
		req, _ := decodeFields([]byte(body))
		out, tools, err := convertAgentRequest(&req, "claude", 0, true)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		g.Requests = append(g.Requests, convAgentGoldenRequest{Name: tc.name, Body: body, Output: string(out),
			Warnings: strings.Join(tools.warnings, "|")})
	}
	g.Stream = convAgentGoldenStream{Input: convAgentStream, Tools: convAgentStreamTools,
		Output: string(agentStreamResponse([]byte(convAgentStream), 0, convAgentStreamTools))}
	checkGoldenJSON(t, "testdata/agents.golden.json", g)
}

// checkGoldenJSON compares v, indented, with a golden file (rewritten by -update-convert).
func checkGoldenJSON(t *testing.T, golden string, v interface{}) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *updateConvertGolden {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update-convert to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date: run go test ./plugin -run TestConvertAgentGolden -update-convert", golden)
	}
}
