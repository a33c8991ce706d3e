package plugin

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

const (
	responsesSSE = "event: response.created\n" +
		`data: {"type":"response.created","response":{"id":"resp_1","usage":null}}` + "\n\n" +
		"event: response.output_text.delta\n" +
		`data: {"type":"response.output_text.delta","delta":"the \"usage\" word"}` + "\n\n" +
		"event: response.completed\n" +
		`data: {"type":"response.completed","response":{"id":"resp_1","output":[{"type":"message"}],"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":4},"output_tokens":7,"total_tokens":27}}}` + "\n\n"
	responsesUsage = `{"input_tokens":20,"input_tokens_details":{"cached_tokens":4},"output_tokens":7,"total_tokens":27}`

	chatSSE = `data: {"id":"c1","choices":[{"delta":{"content":"hi"}}],"usage":null}` + "\r\n\r\n" +
		`data: {"id":"c1","choices":[{"delta":{},"finish_reason":"stop"}],"usage": null}` + "\r\n\r\n" +
		`data: {"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}` + "\r\n\r\n" +
		"data: [DONE]\r\n\r\n"
	chatUsage = `{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}`

	anthropicSSE = "event: message_start\n" +
		`data: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":25,"cache_read_input_tokens":10,"output_tokens":1}}}` + "\n\n" +
		"event: content_block_delta\n" +
		`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}` + "\n\n" +
		"event: message_delta\n" +
		`data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}` + "\n\n" +
		"event: message_stop\n" + `data: {"type":"message_stop"}` + "\n\n"
	anthropicUsage = `{"cache_read_input_tokens":10,"input_tokens":25,"output_tokens":15}`
)

// chunks splits s into pieces of n bytes.
func chunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func TestUsageScanner(t *testing.T) {
	t.Parallel()
	// Over the old 1 MiB tee: the usage is found whatever the reply's size.
	bigJSON := `{"id":"x","output":"` + strings.Repeat("a", 2<<20) + `","usage":{"input_tokens":1}}`
	toolThenUsage := `{"content":[{"type":"tool_use","input":{"usage":{"x":1}}}],"type":"usage","stop":"}",` +
		`"usage" : {"input_tokens":3,"details":{"cached":{"n":0}},"note":"a } in a string","output_tokens":4}}`
	hugeObject := `{"usage":{"pad":"` + strings.Repeat("b", maxUsageObject) + `"},"usage":{"input_tokens":9}}`
	tests := []struct {
		name   string
		format string
		sse    bool
		stream string
		want   string
	}{
		{"responses sse", usageResponses, true, responsesSSE, responsesUsage},
		{"responses incomplete", usageResponses, true,
			`data: {"type":"response.incomplete","response":{"usage":{"input_tokens":2,"output_tokens":1}}}` + "\n\n", `{"input_tokens":2,"output_tokens":1}`},
		{"responses cut before completion", usageResponses, true, responsesSSE[:len(responsesSSE)-40], ""},
		{"responses last line without newline", usageResponses, true, strings.TrimRight(responsesSSE, "\n"), responsesUsage},
		{"chat sse", usageChat, true, chatSSE, chatUsage},
		{"chat without usage", usageChat, true, `data: {"choices":[],"usage":null}` + "\n\ndata: [DONE]\n\n", ""},
		{"anthropic sse merges start and delta", usageAnthropic, true, anthropicSSE, anthropicUsage},
		{"anthropic sse: later values overwrite, zeros included, deltas merge field by field", usageAnthropic, true,
			`data: {"type":"message_start","message":{"usage":{"input_tokens":25,"cache_creation_input_tokens":40,"cache_read_input_tokens":10,"output_tokens":1}}}` + "\n\n" +
				`data: {"type":"message_delta","usage":{"input_tokens":30,"cache_creation_input_tokens":0,"output_tokens":8}}` + "\n\n" +
				`data: {"type":"message_delta","usage":{"output_tokens":15,"cache_read_input_tokens":null}}` + "\n\n",
			`{"cache_creation_input_tokens":0,"cache_read_input_tokens":10,"input_tokens":30,"output_tokens":15}`},
		{"anthropic json", usageAnthropic, false, `{"id":"msg","usage":{"input_tokens":3,"output_tokens":4}}`, `{"input_tokens":3,"output_tokens":4}`},
		{"responses json", usageResponses, false, `{"id":"r","usage":{"input_tokens":5}}`, `{"input_tokens":5}`},
		{"json with null usage", usageChat, false, `{"usage":null}`, ""},
		{"json not json", usageChat, false, `<html>oops</html>`, ""},
		{"json of 2 MiB", usageResponses, false, bigJSON, `{"input_tokens":1}`},
		{"json: the last complete usage object wins, nested braces and strings", usageAnthropic, false, toolThenUsage,
			`{"input_tokens":3,"details":{"cached":{"n":0}},"note":"a } in a string","output_tokens":4}`},
		{"json: an object over the bound is no usage", usageChat, false, hugeObject, `{"input_tokens":9}`},
		{"json: usage whose object never ends", usageChat, false, `{"usage":{"input_tokens":1`, ""},
		{"json: usage at the end with spaces", usageChat, false, "{\"a\":1,\n \"usage\"\n:\n {\"prompt_tokens\":2} }", `{"prompt_tokens":2}`},
	}
	for _, tt := range tests {
		for _, size := range []int{1, 7, 64, 1 << 20} {
			if size < 64 && len(tt.stream) > 64<<10 {
				continue // byte-sized reads of a megabyte only slow the test down
			}
			s := newUsageScanner(tt.format, tt.sse)
			for _, c := range chunks(tt.stream, size) {
				feedUsage(s, []byte(c))
			}
			if got := string(scannedUsage(s)); got != tt.want {
				t.Errorf("%s, %d-byte reads: usage = %s, want %s", tt.name, size, got, tt.want)
			}
		}
	}
}

func TestMergeAnthropicUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		start, delta string
		want         string
	}{
		{"delta adds output", `{"input_tokens":5,"output_tokens":1}`, `{"output_tokens":9}`,
			`{"input_tokens":5,"output_tokens":9}`},
		{"zero overwrites", `{"input_tokens":5,"cache_read_input_tokens":3}`, `{"cache_read_input_tokens":0}`,
			`{"cache_read_input_tokens":0,"input_tokens":5}`},
		{"null is absent", `{"input_tokens":5}`, `{"input_tokens":null,"output_tokens":2}`,
			`{"input_tokens":5,"output_tokens":2}`},
		{"nested objects are replaced whole", `{"server_tool_use":{"web_search_requests":1}}`,
			`{"server_tool_use":{"web_search_requests":2}}`, `{"server_tool_use":{"web_search_requests":2}}`},
		{"no start", ``, `{"output_tokens":2}`, `{"output_tokens":2}`},
		{"no delta", `{"input_tokens":5}`, ``, `{"input_tokens":5}`},
		{"broken delta keeps start", `{"input_tokens":5}`, `{"output_`, `{"input_tokens":5}`},
		{"broken start keeps delta", `[1]`, `{"output_tokens":2}`, `{"output_tokens":2}`},
	}
	for _, tt := range tests {
		if got := string(mergeAnthropicUsage([]byte(tt.start), []byte(tt.delta))); got != tt.want {
			t.Errorf("%s: merge(%s, %s) = %s, want %s", tt.name, tt.start, tt.delta, got, tt.want)
		}
	}
}

func TestUsageScannerSkipsOverlongLine(t *testing.T) {
	t.Parallel()
	s := newUsageScanner(usageChat, true)
	feedUsage(s, []byte(`data: {"usage":{"prompt_tokens":1},"pad":"`))
	feedUsage(s, []byte(strings.Repeat("x", jsonsse.MaxCarry)))
	feedUsage(s, []byte("\"}\n\n"+`data: {"usage":{"prompt_tokens":2}}`+"\n\n"))
	if got := string(scannedUsage(s)); got != `{"prompt_tokens":2}` {
		t.Fatalf("usage = %s", got)
	}
	if cap(s.carry) > 2*jsonsse.MaxCarry {
		t.Fatalf("carry grew to %d", cap(s.carry))
	}
}

// servePlugin runs p behind a real HTTP server, so that flushing and disconnects are real.
func servePlugin(t *testing.T, p http.Handler) string {
	srv := httptest.NewServer(p)
	t.Cleanup(func() { srv.Close() })
	return srv.URL
}

func TestSSEIsFlushedPerEventAndUsageExtracted(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	final := `data: {"type":"response.completed","response":{"id":"r","usage":{"input_tokens":8,"output_tokens":2}}}` + "\n\n"
	up := newTestUpstream(t)
	// response.created commits nothing and is held; the delta commits, so both arrive
	// together before the gate opens.
	up.set("up-1", upstreamReply{status: 200, gate: gate, events: []string{
		`data: {"type":"response.created","response":{"id":"r","usage":null}}` + "\n\n" +
			`data: {"type":"response.output_text.delta","delta":"hi"}` + "\n\n",
		`data: {"type":"response.output_text.delta","delta":" there"}` + "\n\n",
		final[:40], // a line split across writes
		final[40:],
	}})
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	url := servePlugin(t, newTestHandler(t, stub, nil))

	req, _ := http.NewRequest(http.MethodPost, url+"/v1/responses", strings.NewReader(`{"model":"m","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	// The upstream holds every later event until the gate opens: reading the first event
	// here proves the plugin flushed it on its own.
	readEvent := func() string {
		t.Helper()
		done := make(chan string, 1)
		go func() {
			var sb strings.Builder
			for {
				line, err := br.ReadString('\n')
				sb.WriteString(line)
				if err != nil || line == "\n" {
					done <- sb.String()
					return
				}
			}
		}()
		select {
		case ev := <-done:
			return ev
		case <-time.After(3 * time.Second):
			t.Fatal("event not flushed to the client")
			return ""
		}
	}
	if ev := readEvent(); !strings.Contains(ev, "response.created") {
		t.Fatalf("first event = %q", ev)
	}
	if ev := readEvent(); !strings.Contains(ev, `"delta":"hi"`) {
		t.Fatalf("second event = %q", ev)
	}
	gate <- struct{}{}
	if ev := readEvent(); !strings.Contains(ev, `"delta":" there"`) {
		t.Fatalf("third event = %q", ev)
	}
	close(gate)
	if ev := readEvent(); ev != final {
		t.Fatalf("final event = %q", ev)
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Fatalf("trailing bytes %q", rest)
	}
	r := stub.waitReport()
	if string(r.Usage) != `{"input_tokens":8,"output_tokens":2}` || !r.Stream || r.Status != 200 || r.FirstTokenMs > r.DurationMs {
		t.Fatalf("report = %+v usage %s", r, r.Usage)
	}
}

func TestNonStreamUsageReported(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 200, body: `{"id":"chatcmpl-1","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":2}}}`})
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	p := newTestPlugin(t, stub, nil)
	rec := do(p, "/v1/chat/completions", `{"model":"m"}`, nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "chatcmpl-1") {
		t.Fatalf("got %d %s", rec.Code, rec.Body.String())
	}
	r := stub.waitReport()
	var u map[string]json.RawMessage
	if err := json.Unmarshal(r.Usage, &u); err != nil || string(u["prompt_tokens"]) != "12" || string(u["completion_tokens"]) != "4" {
		t.Fatalf("usage = %s", r.Usage)
	}
	if r.UsageFormat != "chat" || r.Stream || r.Path != "/v1/chat/completions" || r.Model != "m" ||
		r.UserID != 7 || r.APIKeyID != 8 || r.GroupID != 9 || r.RequestID != rec.Header().Get(headerRequestID) {
		t.Fatalf("report = %+v", r)
	}
}

func TestClientGoneBeforeUpstreamAnswers(t *testing.T) {
	t.Parallel()
	// The upstream stalls before sending headers; the client leaves meanwhile.
	stall := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // the server notices a closed connection only after the body
		<-r.Context().Done()
		close(stall)
	}))
	t.Cleanup(func() { up.Close() })
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.URL, apiKey: "up-1"})
	p := newTestPlugin(t, stub, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(`{"model":"m"}`)).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	time.AfterFunc(100*time.Millisecond, cancel)
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	<-stall
	if n := len(stub.admitCalls()); n != 1 {
		t.Fatalf("%d admit calls; a departed client must not fail over", n)
	}
	r := stub.waitReport()
	if r.Status != 499 || r.ErrorClass != "client_gone" || len(r.Attempts) != 1 || r.Attempts[0].ErrorClass != "client_gone" {
		t.Fatalf("report = %+v", r)
	}
}

type panickingWriter struct {
	*httptest.ResponseRecorder
}

func (panickingWriter) WriteHeader(int) { panic("writer broke") }

func TestServeHTTPContainsPanics(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", okReply("x"))
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	p := newTestPlugin(t, stub, nil)
	req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(`{"model":"m"}`))
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	func() {
		defer func() {
			// The status line was (as far as the plugin knows) sent and the body is not an
			// event stream: the connection is cut the way net/http expects (panic.go).
			if r := recover(); r != nil && r != http.ErrAbortHandler {
				t.Fatalf("ServeHTTP panicked: %v", r)
			}
		}()
		p.ServeHTTP(panickingWriter{httptest.NewRecorder()}, req)
	}()
	r := stub.waitReport()
	if r.ErrorClass != "internal" || r.GrantID != "g_1" {
		t.Fatalf("report = %+v", r)
	}
}
