package plugin

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// Upstream streams per client path, as the fake sends them: events that commit nothing
// first (held before the commit point), then output, then the terminal event.
var keepAliveStreams = map[string]string{
	pathResponses: "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"m\",\"output\":[]}}\n\n" +
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"m1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hello\"}\n\n" +
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"m\",\"output\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1,\"total_tokens\":4}}}\n\n",
	pathChat: "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: [DONE]\n\n",
	pathMessages: "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":0}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
}

// slowAdmission makes the stub's admit calls wait d before answering as usual.
func slowAdmission(d time.Duration) func(w http.ResponseWriter, ar admitRequest) bool {
	return func(w http.ResponseWriter, ar admitRequest) bool {
		time.Sleep(d)
		return false
	}
}

// pingConfig turns on fast keep-alives.
func pingConfig(c *Config) { c.PingInterval = "40ms" }

// splitKeepAlives returns how many keep-alive frames of path's protocol body starts with,
// and the rest.
func splitKeepAlives(path, body string) (int, string) {
	frame := string(keepAliveFrame(path))
	n := 0
	for strings.HasPrefix(body, frame) {
		body = body[len(frame):]
		n++
	}
	return n, body
}

func TestKeepAliveWhileWaitingThenStream(t *testing.T) {
	t.Parallel()
	for _, path := range []string{pathResponses, pathChat, pathMessages} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("up-1", upstreamReply{status: 200, events: []string{keepAliveStreams[path]}})
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
			stub.admitHook = slowAdmission(250 * time.Millisecond)
			url := servePlugin(t, newTestHandler(t, stub, pingConfig))

			req, _ := http.NewRequest(http.MethodPost, url+path, strings.NewReader(`{"model":"m","stream":true}`))
			req.Header.Set("Authorization", "Bearer "+testClientKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" ||
				resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get(headerRequestID) == "" {
				t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
			}
			pings, rest := splitKeepAlives(path, string(body))
			if pings < 2 {
				t.Fatalf("%d keep-alives before the stream, want at least 2; body %q", pings, body)
			}
			// The upstream stream follows as it was sent, held events included.
			if rest != keepAliveStreams[path] {
				t.Fatalf("after the keep-alives:\n%q\nwant the upstream stream\n%q", rest, keepAliveStreams[path])
			}
			if path != pathMessages && strings.Contains(string(body), ": keep-alive\n\n") {
				t.Fatal("a keep-alive comment is followed by a blank line, which dispatches an empty event")
			}
			r := stub.waitReport()
			if r.Status != 200 || r.ErrorClass != "" || len(r.Usage) == 0 {
				t.Fatalf("report = %+v", r)
			}
		})
	}
}

// The pings reach the client while the admission is still out.
func TestKeepAliveFlushedWhileAdmissionWaits(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 200, events: []string{keepAliveStreams[pathResponses]}})
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	release := make(chan struct{})
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	stub.admitHook = func(w http.ResponseWriter, ar admitRequest) bool {
		<-release
		return false
	}
	url := servePlugin(t, newTestHandler(t, stub, pingConfig))
	t.Cleanup(open) // runs before the servers close, should the test fail early
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/responses", strings.NewReader(`{"model":"m","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	got := make(chan string, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		first := make([]byte, len(openAIKeepAlive))
		if _, err := io.ReadFull(resp.Body, first); err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(first)
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	select {
	case first := <-got:
		if first != ": keep-alive\n" {
			t.Fatalf("first bytes = %q", first)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no keep-alive reached the client while the admission waited")
	}
	open()
	stub.waitReport()
}

// The official OpenAI Go SDK reads a stream that keep-alives preceded.
func TestKeepAliveThroughOpenAISDK(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 200, events: []string{keepAliveStreams[pathResponses]}})
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	stub.admitHook = slowAdmission(200 * time.Millisecond)
	url := servePlugin(t, newTestHandler(t, stub, pingConfig))
	client := openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey(testClientKey), option.WithMaxRetries(0))
	stream := client.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
		Model: "m",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	})
	var text string
	completed := false
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "response.output_text.delta":
			text += ev.Delta
		case "response.completed":
			completed = true
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream.Err() = %v", err)
	}
	if !completed || text != "Hello" {
		t.Fatalf("completed=%v text=%q", completed, text)
	}
	stub.waitReport()
}

func TestNonStreamGetsNoKeepAlive(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", okReply("fine"))
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	stub.admitHook = slowAdmission(200 * time.Millisecond)
	rec := do(newTestHandler(t, stub, pingConfig), pathResponses, `{"model":"m"}`, nil)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" ||
		!strings.HasPrefix(rec.Body.String(), `{"id":"resp_1"`) {
		t.Fatalf("got %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	stub.waitReport()
}

// After keep-alives committed 200 and text/event-stream, every error is a terminal event in
// the client's protocol, never a JSON body.
func TestErrorsAfterKeepAliveGoInStream(t *testing.T) {
	t.Parallel()
	reject := func(status int, reason, body string) func(w http.ResponseWriter, ar admitRequest) bool {
		return func(w http.ResponseWriter, ar admitRequest) bool {
			time.Sleep(200 * time.Millisecond)
			w.Header().Set(headerReject, reason)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, body)
			return true
		}
	}
	const userTimeout = `{"error":{"type":"rate_limit_error","message":"Concurrency limit exceeded for user, please retry later"}}`
	tests := []struct {
		name     string
		path     string
		hook     func(w http.ResponseWriter, ar admitRequest) bool
		upstream upstreamReply
		want     string // the terminal frame's start, after the keep-alives
		wantIn   string // and a part of it
	}{
		{
			name: "responses: wait timeout", path: pathResponses,
			hook: reject(429, "user_concurrency", userTimeout),
			want: "event: response.failed\ndata: {\"type\":\"response.failed\",",
			wantIn: `"status":"failed","output":[],"error":{"code":"rate_limit_exceeded",` +
				`"message":"Concurrency limit exceeded for user, please retry later"}`,
		},
		{
			name: "chat: queue full", path: pathChat,
			hook: reject(429, "user_queue_full", `{"error":{"type":"rate_limit_error","message":"Too many pending requests, please retry later"}}`),
			want: `data: {"error":{"type":"rate_limit_error","message":"Too many pending requests, please retry later","code":"rate_limit_error"}}` + "\n\n",
		},
		{
			name: "messages: wait timeout", path: pathMessages,
			hook: reject(429, "user_concurrency", `{"type":"error","error":{"type":"rate_limit_error","message":"Concurrency limit exceeded for user, please retry later"}}`),
			want: "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Concurrency limit exceeded for user, please retry later\"}}\n\n",
		},
		{
			name: "responses: control service unwell", path: pathResponses,
			hook: func(w http.ResponseWriter, ar admitRequest) bool {
				time.Sleep(200 * time.Millisecond)
				http.Error(w, "boom", http.StatusInternalServerError)
				return true
			},
			want:   "event: response.failed\n",
			wantIn: `"error":{"code":"server_error","message":"Service temporarily unavailable"}`,
		},
		{
			name: "chat: failover exhausted", path: pathChat,
			hook:     slowAdmission(200 * time.Millisecond),
			upstream: upstreamReply{status: 429, body: `{"error":{"message":"slow down"}}`},
			want:     `data: {"error":{"type":"rate_limit_error","message":"Upstream rate limit exceeded, please retry later","code":"rate_limit_error"}}` + "\n\n",
		},
		{
			name: "responses: upstream error before any output", path: pathResponses,
			hook:     slowAdmission(200 * time.Millisecond),
			upstream: upstreamReply{status: 400, body: `{"error":{"type":"invalid_request_error","message":"Unsupported parameter: foo"}}`},
			want:     "event: response.failed\n",
			wantIn:   `"error":{"code":"invalid_request","message":"Unsupported parameter: foo"}`,
		},
		{
			name: "chat: upstream answers a plain body", path: pathChat,
			hook:     slowAdmission(200 * time.Millisecond),
			upstream: okReply("not a stream"),
			want:     `data: {"error":{"type":"upstream_error","message":"Upstream returned a non-streaming response","code":"upstream_error"}}` + "\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("up-1", tt.upstream)
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
			stub.admitHook = tt.hook
			h := newTestHandler(t, stub, func(c *Config) {
				pingConfig(c)
				c.MaxAccountSwitches = 0
			})
			rec := do(h, tt.path, `{"model":"m","stream":true}`, nil)
			if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/event-stream" || rec.Header().Get("Content-Length") != "" {
				t.Fatalf("status %d, headers %v", rec.Code, rec.Header())
			}
			pings, rest := splitKeepAlives(tt.path, rec.Body.String())
			if pings == 0 {
				t.Fatalf("no keep-alive before the error: %q", rec.Body.String())
			}
			if !strings.HasPrefix(rest, tt.want) || !strings.Contains(rest, tt.wantIn) {
				t.Fatalf("after %d keep-alives:\n%q\nwant it to start with %q and contain %q", pings, rest, tt.want, tt.wantIn)
			}
			if n := strings.Count(rest, "\n\n"); n != 1 || !strings.HasSuffix(rest, "\n\n") {
				t.Fatalf("want exactly one terminal event, got %q", rest)
			}
		})
	}
}

// recordingWriter is a ResponseWriter that counts status lines and notes writes made after
// the handler returned.
type recordingWriter struct {
	mu           sync.Mutex
	header       http.Header
	code         int
	writeHeaders int
	body         bytes.Buffer
	returned     bool
	lateWrites   int
}

func newRecordingWriter() *recordingWriter { return &recordingWriter{header: make(http.Header)} }

func (w *recordingWriter) Header() http.Header { return w.header }

func (w *recordingWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeaders++
	if w.code == 0 {
		w.code = code
	}
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.code == 0 {
		w.writeHeaders++
		w.code = 200
	}
	if w.returned {
		w.lateWrites++
	}
	return w.body.Write(p)
}

func (w *recordingWriter) Flush() {}

func (w *recordingWriter) markReturned() {
	w.mu.Lock()
	w.returned = true
	w.mu.Unlock()
}

func (w *recordingWriter) snapshot() (code, writeHeaders, lateWrites int, body string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.code, w.writeHeaders, w.lateWrites, w.body.String()
}

// A failover re-admission keeps pinging without a second status line, and the stream of
// the account that answers follows.
func TestKeepAliveAcrossReadmission(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 500, body: `{"error":{"message":"boom"}}`})
	up.set("up-2", upstreamReply{status: 200, events: []string{keepAliveStreams[pathChat]}})
	stub := newContractStub(t,
		stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"},
		stubAccount{id: 2, baseURL: up.srv.URL, apiKey: "up-2"})
	stub.admitHook = slowAdmission(150 * time.Millisecond)
	h := newTestHandler(t, stub, pingConfig)

	w := newRecordingWriter()
	req := httptest.NewRequest(http.MethodPost, pathChat, strings.NewReader(`{"model":"m","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	h.ServeHTTP(w, req)
	w.markReturned()
	code, writeHeaders, _, body := w.snapshot()
	if code != 200 || writeHeaders != 1 {
		t.Fatalf("status %d written %d times, want 200 once", code, writeHeaders)
	}
	pings, rest := splitKeepAlives(pathChat, body)
	if !strings.HasPrefix(body, ": keep-alive\n") || pings < 2 {
		t.Fatalf("body %q: want keep-alives during both admissions", body)
	}
	// Keep-alives of the second admission may follow the first's: all of them lead.
	if rest != keepAliveStreams[pathChat] {
		t.Fatalf("after the keep-alives: %q", rest)
	}
	if calls := stub.admitCalls(); len(calls) != 2 || calls[1].Failed == nil || calls[1].Failed.Status != 500 {
		t.Fatalf("admit calls = %+v", calls)
	}
	if r := stub.waitReport(); r.Status != 200 || r.AccountID != 2 {
		t.Fatalf("report = %+v", r)
	}
}

// A client that leaves while waiting gets nothing more written, and the request ends.
func TestKeepAliveStopsWhenClientLeaves(t *testing.T) {
	t.Parallel()
	stub := newContractStub(t)
	stub.admitHook = slowAdmission(2 * time.Second)
	h := newTestHandler(t, stub, func(c *Config) { c.PingInterval = "20ms" })

	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodPost, pathResponses, strings.NewReader(`{"model":"m","stream":true}`)).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	w := newRecordingWriter()
	time.AfterFunc(150*time.Millisecond, cancel)
	began := time.Now()
	h.ServeHTTP(w, req)
	w.markReturned()
	if el := time.Since(began); el > time.Second {
		t.Fatalf("the request ended %s after it began; the client left after 150ms", el)
	}
	_, _, _, before := w.snapshot()
	if n, rest := splitKeepAlives(pathResponses, before); n == 0 || rest != "" {
		t.Fatalf("body %q: want keep-alives only", before)
	}
	time.Sleep(150 * time.Millisecond) // several ping intervals
	if _, _, late, after := w.snapshot(); late != 0 || after != before {
		t.Fatalf("%d writes after the request ended", late)
	}
}
