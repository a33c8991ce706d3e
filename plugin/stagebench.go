//go:build stagebench

package plugin

// The stage benchmark (docs/design.md, "The plugin's stages and their cost"), built only
// with -tags stagebench (natively by tests/yaegi/stagebench, and under Yaegi with the
// interpreter's BuildTags), so that Traefik never loads it. StageBench times one stage of a
// request the plugin's own code runs, n times on a 2 KB Responses body, against a control
// service at controlURL that answers admit with a canned grant (tests/yaegi/stagebench
// serves it). Nothing here is on a request path: the plugin times no stage in production.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// StageBenchBody is the request every stage works on: a Codex-style Responses request of
// about 2 KB, with a tool-call round trip in its input and no explicit session id, so that
// validation checks its call ids and the session seed is the content seed.
var StageBenchBody = func() string {
	pad := strings.Repeat("Keep the diff small and explain each change in one sentence. ", 12)
	return `{"model":"gpt-5-codex","instructions":"You are a coding agent running in a terminal. ` + pad +
		`","input":[{"type":"message","role":"developer","content":[{"type":"input_text","text":"<permissions>workspace-write, network disabled</permissions>"}]},` +
		`{"type":"message","role":"user","content":[{"type":"input_text","text":"Find why the tests in ./pkg/store fail and fix them."}]},` +
		`{"type":"function_call","name":"shell","arguments":"{\"command\":[\"go\",\"test\",\"./pkg/store\"]}","call_id":"call_7f3a9c"},` +
		`{"type":"function_call_output","call_id":"call_7f3a9c","output":"--- FAIL: TestOpen (0.00s)\n    store_test.go:41: open: no such file\nFAIL"}],` +
		`"tools":[{"type":"function","name":"shell","description":"Runs a shell command and returns its output.","strict":false,` +
		`"parameters":{"type":"object","properties":{"command":{"type":"array","items":{"type":"string"}},"workdir":{"type":"string"},"timeout_ms":{"type":"number"}},"required":["command"],"additionalProperties":false}},` +
		`{"type":"function","name":"update_plan","description":"Updates the task plan.","strict":false,"parameters":{"type":"object","properties":{"plan":{"type":"array","items":{"type":"object"}}},"required":["plan"]}}],` +
		`"tool_choice":"auto","parallel_tool_calls":false,"reasoning":{"effort":"medium","summary":"auto"},"store":false,"stream":true,` +
		`"include":["reasoning.encrypted_content"],"max_output_tokens":8192}`
}()

// stageBenchKey has the gateway's key format.
const stageBenchKey = "sk-pg-0123456789abcdef0123456789abcdef0123456789abcdef"

// Stages StageBench knows, in the order of a request.
const (
	StageParse      = "parse"       // read, validate and extract: the body's one pass, the session seed
	StageAdmitCodec = "admit-codec" // encode the admit request, decode the grant: the plugin's CPU of the call
	StageAdmit      = "admit"       // the admit call against the canned grant, loopback round trip included
	StageForward    = "forward"     // build the upstream request and arm the attempt's deadlines
	StageRelay      = "relay-event" // relay one SSE event of a committed stream (per event)
	StageRelayJSON  = "relay-json"  // relay a 2 KB JSON reply and take its usage
	StageReport     = "report"      // build the completion record and enqueue it
	StageReportSend = "report-send" // encode a batch of one report and post it (off the client's path)
	StageRequest    = "request"     // a whole non-stream request through ServeHTTP, both round trips on loopback
)

// stageBenchEvents is the stream the relay stage relays: a Responses stream of
// stageBenchDeltas text deltas between its opening and terminal events.
const stageBenchDeltas = 200

func stageBenchStream() []io.Reader {
	var evs []string
	evs = append(evs, `event: response.created`+"\n"+`data: {"type":"response.created","response":{"id":"resp_1","status":"in_progress"}}`+"\n\n")
	evs = append(evs, `event: response.in_progress`+"\n"+`data: {"type":"response.in_progress","response":{"id":"resp_1","status":"in_progress"}}`+"\n\n")
	for i := 0; i < stageBenchDeltas; i++ {
		evs = append(evs, `event: response.output_text.delta`+"\n"+`data: {"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"token `+strconv.Itoa(i)+` of the answer, "}`+"\n\n")
	}
	evs = append(evs, `event: response.completed`+"\n"+`data: {"type":"response.completed","response":{"id":"resp_1","status":"completed","usage":{"input_tokens":512,"output_tokens":200,"total_tokens":712}}}`+"\n\n")
	// One event per Read, as a stream arrives; the readers are compiled.
	rs := make([]io.Reader, len(evs))
	for i := 0; i < len(evs); i++ {
		rs[i] = strings.NewReader(evs[i])
	}
	return rs
}

// stageBenchReply is the JSON reply the relay-json stage relays: about 2 KB of answer,
// then the usage object with its details, where the three APIs put it.
var stageBenchReply = `{"id":"resp_0123456789abcdef","object":"response","created_at":1796668495,"status":"completed",` +
	`"model":"gpt-5-codex","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant",` +
	`"content":[{"type":"output_text","text":"` + strings.Repeat("The store test opens a file that the fixture never writes. ", 32) + `","annotations":[]}]}],` +
	`"usage":{"input_tokens":512,"input_tokens_details":{"cached_tokens":384},"output_tokens":420,` +
	`"output_tokens_details":{"reasoning_tokens":64},"total_tokens":932}}`

// StageBenchEvents is the number of events the relay stage relays per stream.
const StageBenchEvents = stageBenchDeltas + 3

// discardWriter is a client that reads everything at once.
type discardWriter struct {
	h http.Header
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

// StageBench runs stage n times and returns the mean nanoseconds per run (per event for
// the relay stage), or "" and an error text.
func StageBench(stage, controlURL string, n int) (int64, string) {
	cfg := CreateConfig()
	cfg.ControlURL = controlURL
	cfg.PluginSecret = "stagebench-secret"
	cfg.AllowPrivateUpstreams = true
	h, err := New(context.Background(), http.NotFoundHandler(), cfg, "stagebench")
	if err != nil {
		return 0, err.Error()
	}
	p := h.(*Poolgate)
	body := []byte(StageBenchBody)
	newReq := func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, "http://gateway.local/v1/responses", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+stageBenchKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("User-Agent", "codex_cli_rs/0.50.0")
		req.Header.Set("Openai-Beta", "responses=experimental")
		req.Header.Set("Originator", "codex_cli_rs")
		return req
	}
	rw := &discardWriter{h: make(http.Header)}
	prepared := func() (*exchange, string) {
		x := newExchange(p, rw, newReq(), pathResponses)
		if !prepare(x) {
			return nil, "the bench body did not validate"
		}
		return x, ""
	}
	// admitted is a prepared exchange and one admit call's grant, for the stages after
	// admission.
	admitted := func() (*exchange, *grant, string) {
		x, e := prepared()
		if e != "" {
			return nil, nil, e
		}
		g, e := stageGrant(p, x)
		return x, g, e
	}
	// attemptOf is a prepared exchange with an armed attempt on a grant of an unreachable
	// account, for the relay stages (their reply is the bench's own).
	attemptOf := func(stream bool) (*exchange, *watchdog, string) {
		x, e := prepared()
		if e != "" {
			return nil, nil, e
		}
		g := &grant{GrantID: "g", BaseURL: "http://upstream.local", Platform: "openai"}
		x.grant = g
		x.info.stream = stream
		out, wd, err := prepareAttempt(x, g)
		if err != nil || out == nil {
			return nil, nil, "no upstream request"
		}
		return x, wd, ""
	}
	switch stage {
	case StageParse:
		reqs := make([]*http.Request, n)
		for i := 0; i < n; i++ {
			reqs[i] = newReq()
		}
		began := time.Now()
		for i := 0; i < n; i++ {
			x := newExchange(p, rw, reqs[i], pathResponses)
			if !prepare(x) {
				return 0, "the bench body did not validate"
			}
		}
		return perRun(began, n), ""
	case StageAdmitCodec:
		x, g, e := admitted()
		if e != "" {
			return 0, e
		}
		canned, err := jsonsse.Encode(g)
		if err != nil {
			return 0, err.Error()
		}
		began := time.Now()
		for i := 0; i < n; i++ {
			ar := buildAdmitRequest(x, nil)
			ar.DeadlineMs = deadlineMs(time.Now().Add(admitBound(p)))
			if _, err := jsonsse.Encode(ar); err != nil {
				return 0, err.Error()
			}
			if _, ok := decodeGrant(canned); !ok {
				return 0, "the canned grant does not decode"
			}
		}
		return perRun(began, n), ""
	case StageAdmit:
		x, e := prepared()
		if e != "" {
			return 0, e
		}
		began := time.Now()
		for i := 0; i < n; i++ {
			x.grant = nil
			if !admit(x, nil) {
				return 0, "admit was refused: status " + strconv.Itoa(x.status)
			}
			unregister(p.control.leases, x.grant.GrantID)
		}
		return perRun(began, n), ""
	case StageForward:
		x, g, e := admitted()
		if e != "" {
			return 0, e
		}
		x.grant = g
		began := time.Now()
		for i := 0; i < n; i++ {
			out, wd, err := prepareAttempt(x, g)
			if err != nil || out == nil {
				return 0, "no upstream request"
			}
			wd.release()
		}
		return perRun(began, n), ""
	case StageRelay:
		var spent time.Duration
		for i := 0; i < n; i++ {
			x, wd, e := attemptOf(true)
			if e != "" {
				return 0, e
			}
			resp := &http.Response{StatusCode: http.StatusOK, Header: make(http.Header),
				Body: io.NopCloser(io.MultiReader(stageBenchStream()...))}
			resp.Header.Set("Content-Type", "text/event-stream")
			began := time.Now()
			f := relayStream(x, resp, wd)
			if x.relay != nil {
				relayCommitted(x)
			} else {
				wd.release()
			}
			spent += time.Since(began)
			if f != nil || !x.usageComplete {
				return 0, "the bench stream was not relayed whole (" + x.errorClass + ")"
			}
		}
		return int64(spent) / int64(n*StageBenchEvents), ""
	case StageRelayJSON:
		var spent time.Duration
		for i := 0; i < n; i++ {
			x, wd, e := attemptOf(false)
			if e != "" {
				return 0, e
			}
			resp := &http.Response{StatusCode: http.StatusOK, Header: make(http.Header),
				Body: io.NopCloser(strings.NewReader(stageBenchReply))}
			resp.Header.Set("Content-Type", "application/json")
			resp.Header.Set("Content-Length", strconv.Itoa(len(stageBenchReply)))
			began := time.Now()
			relayWith(x, resp, wd.release, wd)
			spent += time.Since(began)
			if !x.usageComplete {
				return 0, "the bench reply's usage was not found (" + x.errorClass + ")"
			}
		}
		return int64(spent) / int64(n), ""
	case StageReport, StageReportSend:
		x, g, e := admitted()
		if e != "" {
			return 0, e
		}
		x.grant = g
		x.status = http.StatusOK
		x.usage = []byte(`{"input_tokens":512,"output_tokens":200,"total_tokens":712}`)
		x.attempts = []attemptReport{{AccountID: g.AccountID, Status: http.StatusOK, DurationMs: 3}}
		// A reporter of its own, sending to the canned control service as the shared one
		// would; a tight loop outruns its sender, so the full spool's drops go unlogged.
		rp := newReporter(p.control.client, reportMaxBatch, reportMaxSpool)
		rp.logf = func(string) {}
		defer rp.close()
		began := time.Now()
		if stage == StageReport {
			for i := 0; i < n; i++ {
				enqueue(rp, buildReport(x))
			}
			return perRun(began, n), ""
		}
		for i := 0; i < n; i++ {
			if !rp.send(outBatch{reports: []spooled{{seq: 1, r: buildReport(x)}}}) {
				return 0, "the report was not acknowledged"
			}
		}
		return perRun(began, n), ""
	case StageRequest:
		// The body without "stream":true; the reply is the canned JSON answer of the
		// loopback upstream. Its report goes to the shared reporter, as in Traefik.
		plain := []byte(strings.Replace(StageBenchBody, `"stream":true,`, "", 1))
		began := time.Now()
		for i := 0; i < n; i++ {
			req, _ := http.NewRequest(http.MethodPost, "http://gateway.local/v1/responses", bytes.NewReader(plain))
			req.Header.Set("Authorization", "Bearer "+stageBenchKey)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "codex_cli_rs/0.50.0")
			rec := &statusWriter{h: make(http.Header)}
			p.ServeHTTP(rec, req)
			if rec.status != http.StatusOK {
				return 0, "the request was answered " + strconv.Itoa(rec.status)
			}
		}
		return perRun(began, n), ""
	}
	return 0, "unknown stage " + stage
}

// statusWriter discards the reply and keeps its status.
type statusWriter struct {
	h      http.Header
	status int
}

func (d *statusWriter) Header() http.Header { return d.h }
func (d *statusWriter) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(p), nil
}
func (d *statusWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}
func (d *statusWriter) Flush() {}

// stageGrant is one admit call's grant, for the stages after admission.
func stageGrant(p *Poolgate, x *exchange) (*grant, string) {
	g, rej, err := p.control.client.admit(context.Background(), admitBound(p), buildAdmitRequest(x, nil))
	if err != nil {
		return nil, err.Error()
	}
	if rej != nil {
		return nil, "admit was refused: " + rej.reason
	}
	return g, ""
}

func perRun(began time.Time, n int) int64 {
	return int64(time.Since(began)) / int64(n)
}
