package convert

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/plugin/jsonsse"
	"github.com/poolgate/poolgate/plugin/wire"
)

var updateConvertGolden = flag.Bool("update-convert", false, "rewrite plugin/convert/testdata golden files")

const (
	convTestRespID  = "resp_0123456789abcdef01234567"
	convTestCreated = 1700000000
	convTestModel   = "gpt-5-codex"
)

// convStreamCase is a recorded-style Anthropic stream and what the conversion must make of it.
type convStreamCase struct {
	name       string
	wantStatus string
	wantText   string // concatenated output text of the response
	wantCalls  []string
	wantFailed bool   // an upstream error event failed it
	wantReason string // incomplete_details.reason when incomplete; "" → max_output_tokens
}

var convStreamCases = []convStreamCase{
	{name: "text", wantStatus: statusCompleted, wantText: "Hello, \"world\"\nhéllo 🌍 é <b>&</b>"},
	{name: "thinking", wantStatus: statusCompleted, wantText: "27 * 453 = 12,231"},
	{name: "tool_use", wantStatus: statusCompleted, wantText: "Let me check the weather.",
		wantCalls: []string{`toolu_01T1x1fJ34qAmk2tNTrN7Up6 get_weather {"location": "Paris, \"FR\""}`, "toolu_01NoArgs get_time {}"}},
	{name: "max_tokens", wantStatus: statusIncomplete, wantText: "Once upon a time, there"},
	{name: "max_tokens_no_stop", wantStatus: statusIncomplete,
		wantCalls: []string{`toolu_01Cut write_file {"path": "a.txt", "cont`}},
	{name: "error_midstream", wantStatus: statusFailed, wantFailed: true},
	{name: "eof_no_stop", wantStatus: statusFailed},
	// No message_start, CRLF framing, blocks without their stop, a stale index, a server
	// tool block, invalid UTF-8, a tool_use without id, an unknown event, a refusal.
	{name: "odd_framing", wantStatus: statusIncomplete, wantReason: "content_filter", wantText: "Aa\ufffdb",
		wantCalls: []string{"call_0123456789abcdef01234567_4 f {}"}},
}

// convertFed runs a whole Anthropic stream through a converter, fed n bytes at a time
// (n <= 0: all at once), and returns the Responses stream.
func convertFed(input []byte, n int) ([]byte, *Stream) {
	s := newResponsesStream(convTestModel, convTestRespID, convTestCreated)
	// The agent tools of convAgentStream (no golden stream names them), so that the fuzz
	// targets reach the namespaced and custom calls too.
	s.tools = newConvTools()
	s.tools.add(toolFunction, "mcp__gh", "issue")
	s.tools.add(toolCustom, "", "apply_patch")
	var out []byte
	for len(input) > 0 {
		k := len(input)
		if n > 0 && n < k {
			k = n
		}
		out = append(out, s.feed(input[:k])...)
		input = input[k:]
	}
	return append(out, s.finish()...), s
}

// convertByEvent feeds the converter one event at a time through event().
func convertByEvent(input []byte) []byte {
	s := newResponsesStream(convTestModel, convTestRespID, convTestCreated)
	var out []byte
	for len(input) > 0 {
		end, _ := nextEventEnd(input, 0)
		if end < 0 {
			end = len(input)
		}
		name, data := jsonsse.EventFields(input[:end])
		if len(data) > 0 {
			out = append(out, s.event(name, data)...)
		}
		input = input[end:]
	}
	return append(out, s.finish()...)
}

func convGoldenText(out []byte, s *Stream) []byte {
	var b bytes.Buffer
	b.Write(out)
	b.WriteString("# response.json\n")
	b.Write(s.responseJSON())
	b.WriteString("\n# anthropic usage\n")
	if u := s.anthropicUsage(); u != nil {
		b.Write(u)
	} else {
		b.WriteString("null")
	}
	b.WriteString("\n")
	return b.Bytes()
}

func TestConvertStreamGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range convStreamCases {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join("testdata", "stream")
			input, err := os.ReadFile(filepath.Join(dir, tc.name+".anthropic.sse"))
			if err != nil {
				t.Fatal(err)
			}
			out, s := convertFed(input, 0)
			for _, n := range []int{1, 7, 64} {
				if got, _ := convertFed(input, n); !bytes.Equal(got, out) {
					t.Fatalf("fed %d bytes at a time, the output differs:\n%s\nwant\n%s", n, got, out)
				}
			}
			if got := convertByEvent(input); !bytes.Equal(got, out) {
				t.Fatalf("fed event by event, the output differs:\n%s\nwant\n%s", got, out)
			}

			golden := filepath.Join(dir, tc.name+".responses.golden")
			got := convGoldenText(out, s)
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
				t.Errorf("output differs from %s:\n%s", golden, got)
			}

			res := checkResponsesStream(t, out)
			if res.status != tc.wantStatus || s.finalStatus() != tc.wantStatus {
				t.Errorf("status: stream %q, converter %q, want %q", res.status, s.finalStatus(), tc.wantStatus)
			}
			if res.text != tc.wantText {
				t.Errorf("text %q, want %q", res.text, tc.wantText)
			}
			if strings.Join(res.calls, "\n") != strings.Join(tc.wantCalls, "\n") {
				t.Errorf("calls %q, want %q", res.calls, tc.wantCalls)
			}
			if _, _, failed := s.upstreamError(); failed != tc.wantFailed {
				t.Errorf("upstreamError reported %v, want %v", failed, tc.wantFailed)
			}
			if !s.started() {
				t.Error("started() is false after semantic output")
			}
			// The non-stream object is the terminal event's response.
			if !bytes.Equal(s.responseJSON(), res.final) {
				t.Errorf("responseJSON differs from the terminal event's response:\n%s\n%s", s.responseJSON(), res.final)
			}
		})
	}
}

// convStreamResult is what checkResponsesStream read from a converted stream.
type convStreamResult struct {
	types  []string
	status string
	text   string
	calls  []string // "call_id name arguments" of the function_call items done
	final  []byte   // the terminal event's response object
}

type convEventProbe struct {
	Type           string          `json:"type"`
	SequenceNumber *int64          `json:"sequence_number"`
	Response       json.RawMessage `json:"response"`
	OutputIndex    *int64          `json:"output_index"`
	ContentIndex   *int64          `json:"content_index"`
	SummaryIndex   *int64          `json:"summary_index"`
	ItemID         *string         `json:"item_id"`
	Item           json.RawMessage `json:"item"`
	Part           json.RawMessage `json:"part"`
	Delta          *string         `json:"delta"`
	Text           *string         `json:"text"`
	Arguments      *string         `json:"arguments"`
	Logprobs       json.RawMessage `json:"logprobs"`
}

type convItemProbe struct {
	ID        *string         `json:"id"`
	Type      string          `json:"type"`
	Status    *string         `json:"status"`
	Role      *string         `json:"role"`
	Content   json.RawMessage `json:"content"`
	Summary   json.RawMessage `json:"summary"`
	CallID    *string         `json:"call_id"`
	Name      *string         `json:"name"`
	Arguments *string         `json:"arguments"`
	Input     *string         `json:"input"`
	Action    json.RawMessage `json:"action"`
}

type convResponseProbe struct {
	ID                *string         `json:"id"`
	Object            string          `json:"object"`
	CreatedAt         *int64          `json:"created_at"`
	Status            string          `json:"status"`
	Model             *string         `json:"model"`
	Output            []convItemProbe `json:"output"`
	Error             json.RawMessage `json:"error"`
	IncompleteDetails json.RawMessage `json:"incomplete_details"`
	Usage             json.RawMessage `json:"usage"`
}

// checkResponsesStream checks a converted stream the way a strict client reads it: event
// framing, increasing sequence numbers from 0, created then in_progress first, one terminal
// event last, the required fields of each event present, deltas adding up to the done
// values, and every function_call item added and done with the same call_id.
func checkResponsesStream(t *testing.T, out []byte) convStreamResult {
	t.Helper()
	var res convStreamResult
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		t.Fatalf("stream does not end with a blank line: %q", out)
	}
	blocks := bytes.Split(bytes.TrimSuffix(out, []byte("\n\n")), []byte("\n\n"))
	deltas := make(map[string]string) // item_id/content_index → concatenated deltas
	calls := make(map[string]string)  // item_id → call_id of function_call items added
	for i, block := range blocks {
		lines := bytes.Split(block, []byte("\n"))
		if len(lines) != 2 || !bytes.HasPrefix(lines[0], []byte("event: ")) || !bytes.HasPrefix(lines[1], []byte("data: ")) {
			t.Fatalf("event %d is not `event:` + `data:`: %q", i, block)
		}
		name := string(lines[0][len("event: "):])
		data := lines[1][len("data: "):]
		var ev convEventProbe
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Fatalf("event %d data is not JSON: %v\n%s", i, err, data)
		}
		if !bytes.HasPrefix(data, []byte(`{"type":"`+name+`"`)) {
			t.Fatalf("event %d: data does not start with its type %q: %s", i, name, data)
		}
		if ev.SequenceNumber == nil || *ev.SequenceNumber != int64(i) {
			t.Fatalf("event %d: sequence_number %v", i, ev.SequenceNumber)
		}
		res.types = append(res.types, name)
		need := func(what string, ok bool) {
			if !ok {
				t.Fatalf("event %d (%s) lacks %s: %s", i, name, what, data)
			}
		}
		key := ""
		if ev.ItemID != nil && ev.OutputIndex != nil {
			key = *ev.ItemID
			if ev.ContentIndex != nil {
				key += "/" + strconv.FormatInt(*ev.ContentIndex, 10)
			}
		}
		switch name {
		case "response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed":
			r := checkResponseObject(t, ev.Response)
			terminal := name != "response.created" && name != "response.in_progress"
			if terminal != (i == len(blocks)-1) {
				t.Fatalf("event %d (%s): terminal events come last, and only one", i, name)
			}
			if (i == 0) != (name == "response.created") || (i == 1) != (name == "response.in_progress") {
				t.Fatalf("event %d is %s: want response.created then response.in_progress first", i, name)
			}
			if terminal {
				res.status = r.Status
				res.final = ev.Response
				if want := strings.TrimPrefix(name, "response."); r.Status != want {
					t.Fatalf("%s carries status %q", name, r.Status)
				}
				for _, it := range r.Output {
					if it.Type == "message" {
						var parts []struct{ Text string }
						_ = json.Unmarshal(it.Content, &parts)
						for _, p := range parts {
							res.text += p.Text
						}
					}
					if it.Type == "function_call" {
						res.calls = append(res.calls, *it.CallID+" "+*it.Name+" "+*it.Arguments)
					}
				}
			}
		case "response.output_item.added", "response.output_item.done":
			need("output_index", ev.OutputIndex != nil)
			it := checkItem(t, ev.Item)
			if it.Type == "function_call" {
				if name == "response.output_item.added" {
					calls[*it.ID] = *it.CallID
					need("arguments \"\"", *it.Arguments == "")
				} else if calls[*it.ID] != *it.CallID || *it.CallID == "" {
					t.Fatalf("event %d: function_call %s done with call_id %q, added with %q", i, *it.ID, *it.CallID, calls[*it.ID])
				}
			}
		case "response.content_part.added", "response.content_part.done":
			need("item_id, output_index, content_index, part", key != "" && ev.ContentIndex != nil && len(ev.Part) > 0)
			need("part.annotations", bytes.Contains(ev.Part, []byte(`"annotations":[]`)))
		case "response.output_text.delta":
			need("item_id, output_index, content_index, delta, logprobs", key != "" && ev.ContentIndex != nil && ev.Delta != nil && len(ev.Logprobs) > 0)
			deltas[key] += *ev.Delta
		case "response.output_text.done":
			need("item_id, output_index, content_index, text, logprobs", key != "" && ev.ContentIndex != nil && ev.Text != nil && len(ev.Logprobs) > 0)
			need("text equal to its deltas", deltas[key] == *ev.Text)
		case "response.reasoning_summary_part.added", "response.reasoning_summary_part.done":
			need("item_id, output_index, summary_index, part", key != "" && ev.SummaryIndex != nil && len(ev.Part) > 0)
		case "response.reasoning_summary_text.delta":
			need("item_id, output_index, summary_index, delta", key != "" && ev.SummaryIndex != nil && ev.Delta != nil)
			deltas[key] += *ev.Delta
		case "response.reasoning_summary_text.done":
			need("item_id, output_index, summary_index, text", key != "" && ev.SummaryIndex != nil && ev.Text != nil)
			need("text equal to its deltas", deltas[key] == *ev.Text)
		case "response.function_call_arguments.delta":
			need("item_id, output_index, delta", key != "" && ev.Delta != nil)
			need("a function_call item", calls[*ev.ItemID] != "")
			deltas[key] += *ev.Delta
		case "response.function_call_arguments.done":
			need("item_id, output_index, arguments", key != "" && ev.Arguments != nil)
			need("arguments equal to their deltas", deltas[key] == *ev.Arguments || (deltas[key] == "" && *ev.Arguments == "{}"))
		default:
			t.Fatalf("event %d: unexpected type %s", i, name)
		}
	}
	if res.status == "" {
		t.Fatalf("no terminal event in %s", out)
	}
	return res
}

func checkResponseObject(t *testing.T, raw json.RawMessage) convResponseProbe {
	t.Helper()
	var r convResponseProbe
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("response is not an object: %v: %s", err, raw)
	}
	if r.ID == nil || r.Object != "response" || r.CreatedAt == nil || r.Model == nil || r.Output == nil ||
		r.Error == nil || r.IncompleteDetails == nil || r.Usage == nil {
		t.Fatalf("response lacks a required field: %s", raw)
	}
	switch r.Status {
	case statusFailed:
		var e struct{ Code, Message string }
		if json.Unmarshal(r.Error, &e) != nil || e.Code == "" || e.Message == "" {
			t.Fatalf("failed response without error {code, message}: %s", raw)
		}
	case statusIncomplete:
		var d struct{ Reason string }
		if json.Unmarshal(r.IncompleteDetails, &d) != nil || d.Reason == "" {
			t.Fatalf("incomplete response without incomplete_details.reason: %s", raw)
		}
	}
	for _, it := range r.Output {
		b, _ := json.Marshal(it)
		checkItem(t, b)
	}
	return r
}

func checkItem(t *testing.T, raw json.RawMessage) convItemProbe {
	t.Helper()
	var it convItemProbe
	if err := json.Unmarshal(raw, &it); err != nil || it.ID == nil || *it.ID == "" {
		t.Fatalf("item without id: %s", raw)
	}
	ok := true
	switch it.Type {
	case "message":
		ok = it.Role != nil && it.Status != nil && len(it.Content) > 0 && it.Content[0] == '['
	case "reasoning":
		ok = len(it.Summary) > 0 && it.Summary[0] == '['
	case "function_call":
		ok = it.CallID != nil && it.Name != nil && it.Arguments != nil && it.Status != nil
	case "custom_tool_call":
		ok = it.CallID != nil && it.Name != nil && it.Input != nil && it.Status != nil
	case "web_search_call":
		ok = it.Status != nil && len(it.Action) > 0 && it.Action[0] == '{'
	default:
		ok = false
	}
	if !ok {
		t.Fatalf("item lacks required fields: %s", raw)
	}
	return it
}

func TestConvertStreamUsage(t *testing.T) {
	t.Parallel()
	input, err := os.ReadFile(filepath.Join("testdata", "stream", "text.anthropic.sse"))
	if err != nil {
		t.Fatal(err)
	}
	_, s := convertFed(input, 0)
	// message_start: input 25, cache creation 5, cache read 10, output 1; message_delta: output 15.
	if got, want := string(s.anthropicUsage()), `{"input_tokens":25,"output_tokens":15,"cache_creation_input_tokens":5,"cache_read_input_tokens":10}`; got != want {
		t.Errorf("anthropic usage %s, want %s", got, want)
	}
	var r struct {
		Usage struct {
			InputTokens        int64 `json:"input_tokens"`
			InputTokensDetails struct {
				CachedTokens int64 `json:"cached_tokens"`
			} `json:"input_tokens_details"`
			OutputTokens int64 `json:"output_tokens"`
			TotalTokens  int64 `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(s.responseJSON(), &r); err != nil {
		t.Fatal(err)
	}
	if u := r.Usage; u.InputTokens != 40 || u.InputTokensDetails.CachedTokens != 10 || u.OutputTokens != 15 || u.TotalTokens != 55 {
		t.Errorf("responses usage %+v, want input 40 (25+10+5), cached 10, output 15, total 55", u)
	}
}

func TestConvertStreamUsageMerge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		events []string
		want   string
	}{
		{"later values overwrite, zeros included", []string{
			`{"type":"message_start","message":{"usage":{"input_tokens":100,"cache_read_input_tokens":7,"output_tokens":1}}}`,
			`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":0,"output_tokens":9}}`,
		}, `{"input_tokens":0,"output_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":7}`},
		{"null is absent", []string{
			`{"type":"message_start","message":{"usage":{"input_tokens":3,"output_tokens":1}}}`,
			`{"type":"message_delta","delta":{},"usage":{"input_tokens":null,"output_tokens":2,"cache_read_input_tokens":4}}`,
		}, `{"input_tokens":3,"output_tokens":2,"cache_creation_input_tokens":0,"cache_read_input_tokens":4}`},
		{"several deltas", []string{
			`{"type":"message_start","message":{"usage":{"input_tokens":3}}}`,
			`{"type":"message_delta","delta":{},"usage":{"output_tokens":2}}`,
			`{"type":"message_delta","delta":{},"usage":{"output_tokens":5}}`,
		}, `{"input_tokens":3,"output_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}`},
		{"none", []string{`{"type":"message_start","message":{}}`}, ``},
	}
	for _, tc := range tests {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newResponsesStream("m", convTestRespID, 1)
			for _, e := range tc.events {
				s.event(nil, []byte(e))
			}
			if got := string(s.anthropicUsage()); got != tc.want {
				t.Errorf("usage %s, want %s", got, tc.want)
			}
		})
	}
}

// Before semantic output the caller may still fail over: an error right after
// message_start leaves started() false and reports the upstream error.
func TestConvertStreamErrorBeforeOutput(t *testing.T) {
	t.Parallel()
	s := newResponsesStream("m", convTestRespID, 1)
	var out []byte
	out = append(out, s.event([]byte("message_start"), []byte(`{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":9}}}`))...)
	out = append(out, s.event([]byte("content_block_start"), []byte(`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`))...)
	if s.started() {
		t.Fatal("started() after an empty text block")
	}
	out = append(out, s.event([]byte("error"), []byte(`{"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}`))...)
	typ, msg, ok := s.upstreamError()
	if !ok || typ != "rate_limit_error" || msg != "Slow down" || s.started() {
		t.Fatalf("upstreamError() = %q, %q, %v; started %v", typ, msg, ok, s.started())
	}
	res := checkResponsesStream(t, out)
	if res.status != statusFailed || !bytes.Contains(res.final, []byte(`"error":{"code":"rate_limit_exceeded","message":"Slow down"}`)) {
		t.Errorf("final response %s", res.final)
	}
	if len(s.finish()) != 0 || len(s.fail(wire.TypeUpstream, "x")) != 0 {
		t.Error("events after the terminal one")
	}
	if string(s.anthropicUsage()) != `{"input_tokens":9,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}` {
		t.Errorf("usage of the failed attempt: %s", s.anthropicUsage())
	}
}

func TestConvertStreamCallerFailure(t *testing.T) {
	t.Parallel()
	s := newResponsesStream("m", convTestRespID, 1)
	out := s.feed([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{}}}\n\n"))
	out = append([]byte(nil), out...)
	if !s.started() {
		t.Fatal("a tool call is semantic output")
	}
	out = append(out, s.fail(wire.TypeUpstream, "Upstream stream idle timeout")...)
	res := checkResponsesStream(t, out)
	if res.status != statusFailed || !bytes.Contains(res.final, []byte(`"message":"Upstream stream idle timeout"`)) {
		t.Errorf("final response %s", res.final)
	}
	if _, _, up := s.upstreamError(); up {
		t.Error("a caller's failure reported as an upstream error")
	}
}

func TestConvertStreamEdgeCases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		stream string
		check  func(t *testing.T, res convStreamResult)
	}{
		{"no events at all", "", func(t *testing.T, res convStreamResult) {
			if res.status != statusFailed {
				t.Errorf("status %s", res.status)
			}
		}},
		{"content before message_start, CRLF framing", "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"Hi\"}}\r\n\r\n" +
			"data: {\"type\":\"message_stop\"}\r\n\r\n", func(t *testing.T, res convStreamResult) {
			if res.status != statusCompleted || res.text != "Hi" {
				t.Errorf("status %s, text %q", res.status, res.text)
			}
		}},
		{"missing content_block_stop, interleaved blocks", `data: {"type":"message_start","message":{}}` + "\n\n" +
			`data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}` + "\n\n" +
			`data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}` + "\n\n" +
			`data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}` + "\n\n" +
			`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"stale index"}}` + "\n\n" +
			`data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"A"}}` + "\n\n" +
			`data: {"type":"content_block_start","index":2,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search"}}` + "\n\n" +
			`data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}` + "\n\n" +
			`data: {"type":"content_block_start","index":3,"content_block":{"type":"text","text":""}}` + "\n\n" +
			`data: {"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"B"}}` + "\n\n" +
			`data: {"type":"content_block_start","index":4,"content_block":{"type":"tool_use","id":"","name":"f"}}` + "\n\n" +
			`data: {"type":"message_stop"}` + "\n\n", func(t *testing.T, res convStreamResult) {
			if res.status != statusCompleted || res.text != "AB" || len(res.calls) != 1 ||
				res.calls[0] != "call_0123456789abcdef01234567_4 f {}" {
				t.Errorf("status %s, text %q, calls %q", res.status, res.text, res.calls)
			}
		}},
		{"invalid UTF-8 in a delta", "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
			"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\xffb\"}}\n\n" +
			"data: {\"type\":\"message_stop\"}\n\n", func(t *testing.T, res convStreamResult) {
			if res.text != "a\ufffdb" {
				t.Errorf("text %q", res.text)
			}
		}},
		{"refusal stop is incomplete", "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\"}}\n\ndata: {\"type\":\"message_stop\"}\n\n",
			func(t *testing.T, res convStreamResult) {
				if res.status != statusIncomplete || !bytes.Contains(res.final, []byte(`"incomplete_details":{"reason":"content_filter"}`)) {
					t.Errorf("final %s", res.final)
				}
			}},
		{"error event with a string error", "event: error\ndata: {\"type\":\"error\",\"error\":\"boom\"}\n\n",
			func(t *testing.T, res convStreamResult) {
				if res.status != statusFailed || !bytes.Contains(res.final, []byte(`"message":"boom"`)) {
					t.Errorf("final %s", res.final)
				}
			}},
		{"undecodable error event", "event: error\ndata: not json\n\n", func(t *testing.T, res convStreamResult) {
			if res.status != statusFailed || !bytes.Contains(res.final, []byte(`"code":"server_error"`)) {
				t.Errorf("final %s", res.final)
			}
		}},
	}
	for _, tc := range tests {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, _ := convertFed([]byte(tc.stream), 5)
			tc.check(t, checkResponsesStream(t, out))
		})
	}
}

func TestConvertStreamOversizedEvent(t *testing.T) {
	t.Parallel()
	s := newResponsesStream("m", convTestRespID, 1)
	out := append([]byte(nil), s.feed([]byte("data: {\"type\":\"message_start\",\"message\":{}}\n\n"))...)
	out = append(out, s.feed(bytes.Repeat([]byte("x"), jsonsse.MaxCarry+1))...)
	out = append(out, s.finish()...)
	res := checkResponsesStream(t, out)
	if res.status != statusFailed {
		t.Errorf("status %s", res.status)
	}
}

// convBenchStream is a long recorded-style text stream: n text deltas of about 20 bytes
// (Anthropic's usual delta size), framed as Anthropic sends them.
func convBenchStream(n int) []byte {
	var b bytes.Buffer
	b.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":100,\"output_tokens\":1}}}\n\n")
	b.WriteString("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	for i := 0; i < n; i++ {
		b.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a few words \\\"here\\\" \"}}\n\n")
	}
	b.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
	b.WriteString("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":500}}\n\n")
	b.WriteString("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	return b.Bytes()
}

// BenchmarkConvertStream reports converted Anthropic events per second (native), fed as
// the relay reads the body: 32 KB reads.
func BenchmarkConvertStream(b *testing.B) {
	const deltas = 1000
	input := convBenchStream(deltas)
	events := bytes.Count(input, []byte("\n\n"))
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := newResponsesStream("gpt-5", convTestRespID, 1)
		rest := input
		for len(rest) > 0 {
			k := len(rest)
			if k > copyBufferSize {
				k = copyBufferSize
			}
			s.feed(rest[:k])
			rest = rest[k:]
		}
		if s.finish(); s.finalStatus() != statusCompleted {
			b.Fatal("stream not completed")
		}
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
