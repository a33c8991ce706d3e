package plugin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
	"github.com/poolgate/poolgate/plugin/wire"
)

// Anthropic stream events, as an Anthropic account sends them.
const (
	anthMsgStart  = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-up\",\"content\":[],\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":2,\"output_tokens\":1}}}\n\n"
	anthTextStart = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
	anthPing      = "event: ping\ndata: {\"type\":\"ping\"}\n\n"
	anthHello     = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n"
	anthWorld     = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" world\"}}\n\n"
	anthTextStop  = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
	anthToolStart = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n"
	anthToolArgs  = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}\n\n"
	anthToolStop  = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
	anthMsgDelta  = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n"
	anthMsgStop   = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	anthOverload  = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
)

// anthFull is a complete answer: text, then a tool call, with usage.
var anthFull = []string{anthMsgStart, anthTextStart, anthPing, anthHello, anthWorld, anthTextStop,
	anthToolStart, anthToolArgs, anthToolStop, anthMsgDelta, anthMsgStop}

const convBodyStream = `{"model":"gpt-5","input":"weather?","stream":true,"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]}`

// newConvertedPlugin serves Responses requests from Anthropic accounts on up.
func newConvertedPlugin(t *testing.T, up *testUpstream, accounts ...stubAccount) (*Poolgate, *contractStub) {
	t.Helper()
	for i := range accounts {
		accounts[i].baseURL = up.srv.URL
		accounts[i].anthropic = true
	}
	stub := newContractStub(t, accounts...)
	return newTestPlugin(t, stub, nil), stub
}

// convertedEvents splits a Responses stream into its event types and data payloads.
func convertedEvents(t *testing.T, body string) ([]string, []json.RawMessage) {
	t.Helper()
	var types []string
	var data []json.RawMessage
	for _, block := range strings.Split(body, "\n\n") {
		if strings.TrimSpace(block) == "" || strings.HasPrefix(block, ":") {
			continue
		}
		name, d := jsonsse.EventFields([]byte(block))
		if !json.Valid(d) {
			t.Fatalf("event %q: data is not JSON", block)
		}
		types = append(types, string(name))
		data = append(data, json.RawMessage(d))
	}
	return types, data
}

func TestConvertedStream(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("ant-1", upstreamReply{status: 200, events: anthFull})
	p, stub := newConvertedPlugin(t, up, stubAccount{id: 1, apiKey: "ant-1", upstreamModel: "claude-up"})

	rec := do(p, "/v1/responses?foo=bar", convBodyStream, map[string]string{"OpenAI-Beta": "x"})
	if rec.Code != 200 || !isEventStream(rec.Header().Get("Content-Type")) {
		t.Fatalf("status %d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	types, data := convertedEvents(t, rec.Body.String())
	if len(types) < 4 || types[0] != "response.created" || types[1] != "response.in_progress" || types[len(types)-1] != "response.completed" {
		t.Fatalf("event order %v", types)
	}
	body := rec.Body.String()
	for _, want := range []string{`"delta":"Hello"`, `"delta":" world"`, `"call_id":"toolu_1"`, `"name":"get_weather"`,
		`"arguments":"{\"city\":\"Paris\"}"`} {
		if !strings.Contains(body, want) {
			t.Errorf("stream lacks %s:\n%s", want, body)
		}
	}
	var final struct {
		Response struct {
			Model string `json:"model"`
			Usage struct {
				InputTokens        int `json:"input_tokens"`
				OutputTokens       int `json:"output_tokens"`
				InputTokensDetails struct {
					CachedTokens int `json:"cached_tokens"`
				} `json:"input_tokens_details"`
			} `json:"usage"`
		} `json:"response"`
	}
	if err := json.Unmarshal(data[len(data)-1], &final); err != nil {
		t.Fatal(err)
	}
	u := final.Response.Usage
	if final.Response.Model != "gpt-5" || u.InputTokens != 17 || u.InputTokensDetails.CachedTokens != 5 || u.OutputTokens != 7 {
		t.Errorf("final response = %s", data[len(data)-1])
	}

	// The upstream got a streamed Messages request on /v1/messages, with the account's
	// credentials and nothing of the client's.
	reqs := up.recorded()
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests", len(reqs))
	}
	r := reqs[0]
	if r.path != "/v1/messages" || r.rawQuery != "" || r.header.Get("X-Api-Key") != "ant-1" ||
		r.header.Get("Anthropic-Version") != "2023-06-01" || r.header.Get("Authorization") != "" || r.header.Get("Openai-Beta") != "" {
		t.Errorf("upstream request %s?%s %v", r.path, r.rawQuery, r.header)
	}
	var sent struct {
		Model     string `json:"model"`
		Stream    bool   `json:"stream"`
		MaxTokens int    `json:"max_tokens"`
		Tools     []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(r.body, &sent); err != nil || sent.Model != "claude-up" || !sent.Stream ||
		sent.MaxTokens != convertDefaultMaxTokens || len(sent.Tools) != 1 || sent.Tools[0].Name != "get_weather" {
		t.Errorf("upstream body %s (%v)", r.body, err)
	}

	rep := stub.waitReport()
	if rep.UsageFormat != usageAnthropic || rep.Model != "gpt-5" || rep.UpstreamModel != "claude-up" || rep.Path != pathResponses ||
		rep.Status != 200 || rep.ErrorClass != "" || !rep.Stream || len(rep.Attempts) != 1 || rep.FirstTokenMs < 0 {
		t.Errorf("report = %+v", rep)
	}
	in, out, cached := tokens(t, usageAnthropic, rep.Usage)
	if in != 10 || out != 7 || cached != 5 || !strings.Contains(string(rep.Usage), `"cache_creation_input_tokens":2`) {
		t.Errorf("report usage %s", rep.Usage)
	}
}

func TestConvertedNonStream(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("ant-1", upstreamReply{status: 200, events: anthFull})
	p, stub := newConvertedPlugin(t, up, stubAccount{id: 1, apiKey: "ant-1"})

	rec := do(p, "/openai/v1/responses", `{"model":"claude-x","input":"weather?"}`, nil)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("status %d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var resp struct {
		Object string `json:"object"`
		Status string `json:"status"`
		Model  string `json:"model"`
		Output []struct {
			Type      string `json:"type"`
			CallID    string `json:"call_id"`
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
			Content   []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
		Usage struct {
			InputTokens  int `json:"input_tokens"`
			OutputTokens int `json:"output_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if resp.Object != "response" || resp.Status != "completed" || resp.Model != "claude-x" || len(resp.Output) != 2 ||
		resp.Output[0].Type != "message" || len(resp.Output[0].Content) != 1 || resp.Output[0].Content[0].Text != "Hello world" ||
		resp.Output[1].Type != "function_call" || resp.Output[1].CallID != "toolu_1" || resp.Output[1].Arguments != `{"city":"Paris"}` ||
		resp.Usage.InputTokens != 17 || resp.Usage.OutputTokens != 7 {
		t.Errorf("response = %s", rec.Body)
	}
	var sent struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	if reqs := up.recorded(); len(reqs) != 1 || json.Unmarshal(reqs[0].body, &sent) != nil || !sent.Stream || sent.Model != "claude-x" {
		t.Errorf("upstream was not asked to stream claude-x: %+v", sent)
	}
	rep := stub.waitReport()
	if rep.UsageFormat != usageAnthropic || rep.Status != 200 || rep.Stream || rep.UpstreamModel != "" {
		t.Errorf("report = %+v", rep)
	}
}

// Before the first semantic output every failure fails over; the answering account's
// stream is the only one the client sees.
func TestConvertedFailoverBeforeCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		first      upstreamReply
		wantStatus int    // of the failed attempt, as re-admission reports it
		wantClass  string // of the failed attempt
		wantUsage  bool   // the failed attempt announced its input
	}{
		{"529", upstreamReply{status: 529, body: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`}, 529, classUpstreamStatus, false},
		{"500", upstreamReply{status: 500, body: `{"type":"error","error":{"type":"api_error","message":"boom"}}`}, 500, classUpstreamStatus, false},
		{"error event", upstreamReply{status: 200, events: []string{anthMsgStart, anthTextStart, anthOverload}}, 529, classInStreamError, true},
		{"EOF without message_stop", upstreamReply{status: 200, events: []string{anthMsgStart, anthTextStart, anthPing}}, 0, classStreamIncomplete, true},
		{"not a stream", upstreamReply{status: 200, body: `{"type":"message"}`}, 200, classNotEventStream, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("ant-1", tt.first)
			up.set("ant-2", upstreamReply{status: 200, events: anthFull})
			p, stub := newConvertedPlugin(t, up, stubAccount{id: 1, apiKey: "ant-1"}, stubAccount{id: 2, apiKey: "ant-2"})
			p.retryMax = 0 // failover itself: a 500 is otherwise retried once on its account (retry.go)

			rec := do(p, "/v1/responses", convBodyStream, nil)
			types, _ := convertedEvents(t, rec.Body.String())
			if rec.Code != 200 || len(types) == 0 || types[0] != "response.created" || types[len(types)-1] != "response.completed" ||
				strings.Count(rec.Body.String(), "event: response.created") != 1 {
				t.Fatalf("status %d, events %v", rec.Code, types)
			}
			calls := stub.admitCalls()
			if len(calls) != 2 || calls[1].Failed == nil || calls[1].Failed.Status != tt.wantStatus || calls[1].Failed.ErrorClass != tt.wantClass {
				t.Fatalf("re-admission = %+v", calls[len(calls)-1].Failed)
			}
			rep := stub.waitReport()
			if rep.Status != 200 || rep.AccountID != 2 || len(rep.Attempts) != 2 || rep.Attempts[0].ErrorClass != tt.wantClass {
				t.Fatalf("report = %+v", rep)
			}
			if got := !jsonsse.IsNull(rep.Attempts[0].Usage); got != tt.wantUsage {
				t.Errorf("failed attempt usage %s, want present %v", rep.Attempts[0].Usage, tt.wantUsage)
			}
			if in, out, _ := tokens(t, usageAnthropic, rep.Usage); in != 10 || out != 7 {
				t.Errorf("report usage %s", rep.Usage)
			}
		})
	}
}

// After the first semantic output the account is kept: a failure ends the converted
// stream with response.failed (or response.incomplete when max_tokens cut it).
func TestConvertedFailureAfterCommit(t *testing.T) {
	t.Parallel()
	maxTokensDelta := "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":3}}\n\n"
	tests := []struct {
		name      string
		events    []string
		wantLast  string
		wantClass string
		wantMsg   string
	}{
		{"error event", []string{anthMsgStart, anthTextStart, anthHello, anthOverload}, "response.failed", classInStreamError, `"message":"Overloaded"`},
		{"EOF without message_stop", []string{anthMsgStart, anthTextStart, anthHello}, "response.failed", classStreamIncomplete, `"message":"Upstream stream ended unexpectedly"`},
		{"max_tokens without message_stop", []string{anthMsgStart, anthTextStart, anthHello, maxTokensDelta}, "response.incomplete", "", `"reason":"max_output_tokens"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("ant-1", upstreamReply{status: 200, events: tt.events})
			up.set("ant-2", upstreamReply{status: 200, events: anthFull})
			p, stub := newConvertedPlugin(t, up, stubAccount{id: 1, apiKey: "ant-1"}, stubAccount{id: 2, apiKey: "ant-2"})

			rec := do(p, "/v1/responses", convBodyStream, nil)
			types, data := convertedEvents(t, rec.Body.String())
			if rec.Code != 200 || len(types) == 0 || types[len(types)-1] != tt.wantLast || strings.Contains(rec.Body.String(), "response.completed") {
				t.Fatalf("status %d, events %v", rec.Code, types)
			}
			if !strings.Contains(string(data[len(data)-1]), tt.wantMsg) || !strings.Contains(rec.Body.String(), `"delta":"Hello"`) {
				t.Errorf("last event %s", data[len(data)-1])
			}
			if n := len(stub.admitCalls()); n != 1 {
				t.Errorf("%d admissions: the committed request must not fail over", n)
			}
			rep := stub.waitReport()
			if rep.Status != 200 || rep.ErrorClass != tt.wantClass || rep.AccountID != 1 || len(rep.Attempts) != 1 || jsonsse.IsNull(rep.Usage) {
				t.Errorf("report = %+v", rep)
			}
		})
	}
}

func TestConvertedNonStreamFailure(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("ant-1", upstreamReply{status: 200, events: []string{anthMsgStart, anthTextStart, anthHello}})
	p, stub := newConvertedPlugin(t, up, stubAccount{id: 1, apiKey: "ant-1"})
	rec := do(p, "/v1/responses", `{"model":"m","input":"hi"}`, nil)
	if rec.Code != 502 || !jsonEq(rec.Body.String(), `{"error":{"code":"upstream_error","message":"Upstream stream ended unexpectedly"}}`) {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if rep := stub.waitReport(); rep.Status != 502 || rep.ErrorClass != classStreamIncomplete || jsonsse.IsNull(rep.Usage) {
		t.Errorf("report = %+v", rep)
	}
}

func jsonEq(a, b string) bool {
	var x, y interface{}
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// Errors on the converted path have the shape {"error":{"code","message"}} (docs/design.md,
// "Conversion contract").
func TestConvertedErrors(t *testing.T) {
	t.Parallel()
	// The code is the upstream's error class, not server_error.
	exhausted := func(status int) string {
		return `{"error":{"code":"` + wire.AnthropicErrorType(status, "") + `","message":"All available accounts exhausted"}}`
	}
	tests := []struct {
		name       string
		replies    []upstreamReply
		body       string
		wantStatus int
		wantBody   string
	}{
		{"exhausted after 500s", []upstreamReply{{status: 500}, {status: 500}}, convBodyStream, 500, exhausted(500)},
		{"exhausted after 529", []upstreamReply{{status: 529}}, convBodyStream, 529, exhausted(529)},
		{"exhausted after an error event", []upstreamReply{{status: 200, events: []string{anthMsgStart, anthOverload}}}, `{"model":"m","input":"x"}`, 529, exhausted(529)},
		{"exhausted after a cut", []upstreamReply{{status: 200, events: []string{anthMsgStart}}}, `{"model":"m","input":"x"}`, 502, exhausted(502)},
		{"upstream 400", []upstreamReply{{status: 400, body: `{"type":"error","error":{"type":"invalid_request_error","message":"messages: bad"}}`}},
			convBodyStream, 400, `{"error":{"code":"invalid_request_error","message":"messages: bad"}}`},
		{"error event that is not failed over", []upstreamReply{{status: 200, events: []string{anthMsgStart,
			"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long\"}}\n\n"}}},
			convBodyStream, 400, `{"error":{"code":"invalid_request_error","message":"prompt is too long"}}`},
		{"body that cannot be converted", []upstreamReply{{status: 200, events: anthFull}}, `{"model":"m","input":"x","reasoning":{"effort":"extreme"}}`,
			400, `{"error":{"code":"invalid_request_error","message":"reasoning.effort must be one of none, minimal, low, medium, high, xhigh"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			var accounts []stubAccount
			for i, r := range tt.replies {
				key := "ant-" + string(rune('1'+i))
				up.set(key, r)
				accounts = append(accounts, stubAccount{id: int64(i + 1), apiKey: key})
			}
			p, stub := newConvertedPlugin(t, up, accounts...)
			rec := do(p, "/v1/responses", tt.body, nil)
			if rec.Code != tt.wantStatus || !jsonEq(rec.Body.String(), tt.wantBody) {
				t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			if rep := stub.waitReport(); rep.Status != tt.wantStatus || rep.UsageFormat != usageAnthropic {
				t.Errorf("report = %+v", rep)
			}
		})
	}
}

// The grant's output cap bounds max_tokens, and the thinking budget stays below it.
func TestConvertedOutputCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		members    string
		cap        int64
		wantMax    int64
		wantBudget int64 // 0: no thinking
	}{
		{"no cap, no maximum", ``, 0, convertDefaultMaxTokens, 0},
		{"cap, no maximum", ``, 300, 300, 0},
		{"cap below the client's maximum", `,"max_output_tokens":1000`, 300, 300, 0},
		{"client's maximum below the cap", `,"max_output_tokens":100`, 300, 100, 0},
		{"cap leaves room for some thinking", `,"reasoning":{"effort":"high"}`, 5000, 5000, 5000 - convertMinAnswerTokens},
		{"cap too small for thinking", `,"reasoning":{"effort":"high"}`, 2000, 2000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("ant-1", upstreamReply{status: 200, events: anthFull})
			p, _ := newConvertedPlugin(t, up, stubAccount{id: 1, apiKey: "ant-1", outputCap: tt.cap})
			rec := do(p, "/v1/responses", `{"model":"m","input":"hi"`+tt.members+`}`, nil)
			if rec.Code != 200 {
				t.Fatalf("got %d %s", rec.Code, rec.Body)
			}
			var sent struct {
				MaxTokens int64 `json:"max_tokens"`
				Thinking  *struct {
					BudgetTokens int64 `json:"budget_tokens"`
				} `json:"thinking"`
			}
			reqs := up.recorded()
			if err := json.Unmarshal(reqs[0].body, &sent); err != nil {
				t.Fatal(err)
			}
			budget := int64(0)
			if sent.Thinking != nil {
				budget = sent.Thinking.BudgetTokens
			}
			if sent.MaxTokens != tt.wantMax || budget != tt.wantBudget || (budget > 0 && budget >= sent.MaxTokens) {
				t.Errorf("max_tokens %d, budget %d; want %d, %d", sent.MaxTokens, budget, tt.wantMax, tt.wantBudget)
			}
		})
	}
}

// Keep-alives while the admission waits are SSE comments; the converted stream follows
// them without a second status line, and a failure after them ends the stream with
// response.failed.
func TestConvertedAfterKeepAlives(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		replies  []upstreamReply
		wantLast string
		wantMsg  string
	}{
		{"stream", []upstreamReply{{status: 200, events: anthFull}}, "response.completed", `"delta":"Hello"`},
		// After the status line the event's code is OpenAI's for the class (streamerr.go).
		{"exhausted", []upstreamReply{{status: 529}}, "response.failed", `"error":{"code":"server_error","message":"All available accounts exhausted"}`},
		{"exhausted by rate limits", []upstreamReply{{status: 429}}, "response.failed", `"error":{"code":"rate_limit_exceeded","message":"All available accounts exhausted"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			var accounts []stubAccount
			for i, r := range tt.replies {
				key := "ant-" + string(rune('1'+i))
				up.set(key, r)
				accounts = append(accounts, stubAccount{id: int64(i + 1), apiKey: key, baseURL: up.srv.URL, anthropic: true})
			}
			stub := newContractStub(t, accounts...)
			stub.admitHook = slowAdmission(200 * time.Millisecond)
			p := newTestPlugin(t, stub, pingConfig)
			rec := do(p, "/v1/responses", convBodyStream, nil)
			pings, rest := splitKeepAlives(pathResponses, rec.Body.String())
			if rec.Code != 200 || pings < 2 {
				t.Fatalf("status %d, %d keep-alives: %q", rec.Code, pings, rec.Body)
			}
			types, data := convertedEvents(t, rest)
			if len(types) == 0 || types[len(types)-1] != tt.wantLast || !strings.Contains(rest, tt.wantMsg) {
				t.Fatalf("events %v, last %s", types, data[len(data)-1])
			}
			stub.waitReport()
		})
	}
}

// The conversion's output sizes (plugin/convert/request.go): max_tokens when the client
// names none, and what a thinking budget leaves of it for the answer at least.
const (
	convertDefaultMaxTokens = 8192
	convertMinAnswerTokens  = 1024
)
