package plugin

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Pass-through stream events of the three APIs for the endings tests.
const (
	msgBodyStream  = `{"model":"claude-x","max_tokens":64,"messages":[{"role":"user","content":"hi"}],"stream":true}`
	chatBodyStream = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}`
	respBodyStream = `{"model":"gpt-4o","input":"hi","stream":true}`

	anthRateLimit = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n"
	anthAPIError  = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal\"}}\n\n"
	anthInvalid   = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long\"}}\n\n"
	anthOneDelta  = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n"

	respCreatedEv  = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_a\",\"status\":\"in_progress\"}}\n\n"
	respInProgress = "event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"response\":{\"id\":\"resp_a\"}}\n\n"
	respDeltaEv    = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"partial\"}\n\n"
	respFailed     = "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"resp_a\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"The server had an error\"}}}\n\n"
	respErrorEvent = "event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"Rate limit reached\",\"param\":null}\n\n"
	respBadImage   = "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"invalid_image\",\"message\":\"bad image\"}}}\n\n"

	chatRole     = `data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}` + "\n\n"
	chatHi       = `data: {"id":"c1","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],"usage":null}` + "\n\n"
	chatFinish   = `data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}` + "\n\n"
	chatUsageEv  = `data: {"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}` + "\n\n"
	chatDone     = "data: [DONE]\n\n"
	chatSrvError = `data: {"error":{"message":"The server had an error","type":"server_error","code":null}}` + "\n\n"
	chatRLError  = `data: {"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}` + "\n\n"
	chatBadReq   = `data: {"error":{"message":"bad messages","type":"invalid_request_error","code":null}}` + "\n\n"

	// Errors that say the account is out of credit: failed over as quota, whatever status
	// their type implies (a 400 included).
	anthBilling  = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"billing_error\",\"message\":\"billing issue\"}}\n\n"
	anthNoCredit = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Your credit balance is too low to access the Anthropic API.\"}}\n\n"
	respNoQuota  = "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"insufficient_quota\",\"message\":\"You exceeded your current quota\"}}}\n\n"
	chatNoQuota  = `data: {"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}` + "\n\n"
)

var (
	anthClean = []string{anthMsgStart, anthTextStart, anthHello, anthTextStop, anthOneDelta, anthMsgStop}
	respClean = []string{respCreatedEv, respInProgress, respDeltaEv,
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_b\",\"usage\":{\"input_tokens\":4,\"output_tokens\":2}}}\n\n"}
	chatClean = []string{chatRole, chatHi, chatFinish, chatUsageEv, chatDone}
)

// streamPlugin serves the path from two accounts on a local upstream: k1 answers first, with
// first; k2 answers clean. It returns the client's body of k2's answer.
func streamPlugin(t *testing.T, path string, first []string) (*Poolgate, *contractStub, string) {
	t.Helper()
	up := newTestUpstream(t)
	clean := chatClean
	switch path {
	case pathMessages:
		clean = anthClean
	case pathResponses:
		clean = respClean
	}
	up.set("k1", upstreamReply{status: 200, events: first})
	up.set("k2", upstreamReply{status: 200, events: clean})
	a := []stubAccount{{id: 1, apiKey: "k1", baseURL: up.srv.URL}, {id: 2, apiKey: "k2", baseURL: up.srv.URL}}
	if path == pathMessages {
		a[0].anthropic, a[1].anthropic = true, true
	}
	stub := newContractStub(t, a...)
	want := strings.Join(clean, "")
	if path == pathChat {
		want = strings.Replace(want, chatUsageEv, "", 1) // the client did not ask for it
	}
	return newTestPlugin(t, stub, nil), stub, want
}

func streamBodyFor(path string) string {
	switch path {
	case pathMessages:
		return msgBodyStream
	case pathResponses:
		return respBodyStream
	}
	return chatBodyStream
}

// An error event before the first semantic output fails over with the status its type
// implies; the client sees the second account's stream only, not a byte of the first's.
func TestInStreamErrorBeforeCommitFailsOver(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		path       string
		first      []string
		wantStatus int
		wantUsage  bool // the failed attempt keeps the input message_start announced
		wantClass  string
	}{
		{"anthropic overloaded after message_start", pathMessages, []string{anthMsgStart, anthPing, anthOverload}, 529, true, classInStreamError},
		{"anthropic rate limit", pathMessages, []string{anthMsgStart, anthRateLimit}, 429, true, classInStreamError},
		{"anthropic api_error after an empty block", pathMessages, []string{anthMsgStart, anthTextStart, anthAPIError}, 500, true, classInStreamError},
		{"anthropic error without its blank line", pathMessages, []string{anthMsgStart, strings.TrimRight(anthOverload, "\n")}, 529, true, classInStreamError},
		{"responses response.failed", pathResponses, []string{respCreatedEv, respInProgress, respFailed}, 500, false, classInStreamError},
		{"responses error event, rate limit", pathResponses, []string{respCreatedEv, respErrorEvent}, 429, false, classInStreamError},
		{"chat error chunk", pathChat, []string{chatRole, chatSrvError}, 500, false, classInStreamError},
		{"chat rate limit chunk", pathChat, []string{chatRLError}, 429, false, classInStreamError},
		{"chat error chunk then [DONE]", pathChat, []string{chatRole, chatSrvError, chatDone}, 500, false, classInStreamError},
		{"anthropic billing_error", pathMessages, []string{anthMsgStart, anthBilling}, 402, true, classQuota},
		{"anthropic credit balance too low", pathMessages, []string{anthMsgStart, anthNoCredit}, 400, true, classQuota},
		{"responses response.failed insufficient_quota", pathResponses, []string{respCreatedEv, respNoQuota}, 429, false, classQuota},
		{"chat insufficient_quota chunk", pathChat, []string{chatNoQuota}, 429, false, classQuota},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, stub, clean := streamPlugin(t, tt.path, tt.first)
			rec := do(p, tt.path, streamBodyFor(tt.path), nil)
			if rec.Code != 200 || rec.Body.String() != clean {
				t.Fatalf("got %d %q, want the second account's stream exactly %q", rec.Code, rec.Body, clean)
			}
			calls := stub.admitCalls()
			if len(calls) != 2 || calls[1].Failed == nil || calls[1].Failed.Status != tt.wantStatus ||
				calls[1].Failed.ErrorClass != tt.wantClass || calls[1].Failed.AccountID != 1 {
				t.Fatalf("re-admission failed = %+v, want status %d class %s", calls[len(calls)-1].Failed, tt.wantStatus, tt.wantClass)
			}
			rep := stub.waitReport()
			if rep.Status != 200 || rep.ErrorClass != "" || rep.AccountID != 2 || len(rep.Attempts) != 2 ||
				rep.Attempts[0].ErrorClass != tt.wantClass || rep.Attempts[0].Status != tt.wantStatus {
				t.Fatalf("report = %+v", rep)
			}
			if got := !jsonsse.IsNull(rep.Attempts[0].Usage); got != tt.wantUsage {
				t.Errorf("failed attempt usage %s, want present %v", rep.Attempts[0].Usage, tt.wantUsage)
			}
		})
	}
}

// An error that is the request's own (not the account's) is not failed over: it ends the
// stream as the upstream sent it, and nothing is billed.
func TestInStreamClientErrorIsRelayed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		path       string
		first      []string
		wantStatus int
	}{
		{"anthropic invalid_request_error", pathMessages, []string{anthMsgStart, anthInvalid}, 400},
		{"responses invalid_image", pathResponses, []string{respCreatedEv, respBadImage}, 400},
		{"chat invalid_request_error", pathChat, []string{chatRole, chatBadReq}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, stub, _ := streamPlugin(t, tt.path, tt.first)
			rec := do(p, tt.path, streamBodyFor(tt.path), nil)
			if want := strings.Join(tt.first, ""); rec.Code != 200 || rec.Body.String() != want {
				t.Fatalf("got %d %q, want the upstream's stream unchanged %q", rec.Code, rec.Body, want)
			}
			if n := len(stub.admitCalls()); n != 1 {
				t.Errorf("%d admissions: the request's own error must not fail over", n)
			}
			rep := stub.waitReport()
			if rep.ErrorClass != classInStreamError || rep.AccountID != 1 || len(rep.Attempts) != 1 ||
				rep.Attempts[0].Status != tt.wantStatus || !jsonsse.IsNull(rep.Usage) || rep.UsageSource != usageSourceUpstream {
				t.Errorf("report = %+v usage %s", rep, rep.Usage)
			}
		})
	}
}

// After the commit point the upstream's error ends the stream as it came (it is in the
// client's protocol): no gateway frame after it, no failover, the class recorded.
func TestInStreamErrorAfterCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		path       string
		first      []string
		wantStatus int
	}{
		{"anthropic overloaded", pathMessages, []string{anthMsgStart, anthTextStart, anthHello, anthOverload}, 529},
		{"responses response.failed", pathResponses, []string{respCreatedEv, respDeltaEv, respFailed}, 500},
		{"chat error chunk", pathChat, []string{chatRole, chatHi, chatSrvError}, 500},
		{"chat error chunk then [DONE]", pathChat, []string{chatRole, chatHi, chatRLError, chatDone}, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, stub, _ := streamPlugin(t, tt.path, tt.first)
			rec := do(p, tt.path, streamBodyFor(tt.path), nil)
			if want := strings.Join(tt.first, ""); rec.Code != 200 || rec.Body.String() != want {
				t.Fatalf("got %d %q, want the upstream's stream unchanged %q", rec.Code, rec.Body, want)
			}
			if n := len(stub.admitCalls()); n != 1 {
				t.Errorf("%d admissions: a committed stream must not fail over", n)
			}
			rep := stub.waitReport()
			if rep.Status != 200 || rep.ErrorClass != classInStreamError || rep.AccountID != 1 ||
				len(rep.Attempts) != 1 || rep.Attempts[0].ErrorClass != classInStreamError || rep.Attempts[0].Status != tt.wantStatus {
				t.Errorf("report = %+v", rep)
			}
		})
	}
}

// How a Chat Completions stream ends: [DONE] is not needed after finish_reason and usage; a
// stream cut before them still gets the gateway's error frame.
func TestChatStreamEndings(t *testing.T) {
	t.Parallel()
	const cutFrame = `data: {"error":{"type":"upstream_error","message":"Upstream stream ended unexpectedly","code":"upstream_error"}}` + "\n\n"
	tests := []struct {
		name      string
		events    []string
		wantBody  string
		wantClass string
		wantUsage bool
	}{
		{"with [DONE]", chatClean, chatRole + chatHi + chatFinish + chatDone, "", true},
		{"without [DONE]", []string{chatRole, chatHi, chatFinish, chatUsageEv}, chatRole + chatHi + chatFinish, "", true},
		{"usage chunk without its blank line", []string{chatRole, chatHi, chatFinish, strings.TrimRight(chatUsageEv, "\n")},
			chatRole + chatHi + chatFinish, "", true},
		{"finish_reason without usage", []string{chatRole, chatHi, chatFinish}, chatRole + chatHi + chatFinish + cutFrame, classStreamIncomplete, false},
		{"cut before finish_reason", []string{chatRole, chatHi}, chatRole + chatHi + cutFrame, classStreamIncomplete, false},
		{"finish chunk without its blank line", []string{chatRole, chatHi, strings.TrimRight(chatFinish, "\n")},
			chatRole + chatHi + chatFinish + cutFrame, classStreamIncomplete, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, stub, _ := streamPlugin(t, pathChat, tt.events)
			rec := do(p, pathChat, chatBodyStream, nil)
			if rec.Code != 200 || rec.Body.String() != tt.wantBody {
				t.Fatalf("got %d %q,\nwant %q", rec.Code, rec.Body, tt.wantBody)
			}
			rep := stub.waitReport()
			if rep.ErrorClass != tt.wantClass || len(rep.Attempts) != 1 {
				t.Errorf("report = %+v, want class %q", rep, tt.wantClass)
			}
			if got := string(rep.Usage) == chatUsage; got != tt.wantUsage {
				t.Errorf("report usage %s, want the usage chunk's: %v", rep.Usage, tt.wantUsage)
			}
			if tt.wantUsage && rep.UsageSource != usageSourceUpstream {
				t.Errorf("usage_source %q, want upstream", rep.UsageSource)
			}
		})
	}
}

// The usage chunk that include_usage produces reaches only clients that asked for it.
func TestChatUsageChunkOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	finishWithUsage := `data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}` + "\n\n"
	tests := []struct {
		name     string
		body     string
		events   []string
		wantBody string
	}{
		{"not asked: read, not passed on", chatBodyStream, chatClean, chatRole + chatHi + chatFinish + chatDone},
		{"asked false: the gateway's own", `{"model":"gpt-4o","messages":[],"stream":true,"stream_options":{"include_usage":false}}`,
			chatClean, chatRole + chatHi + chatFinish + chatDone},
		{"asked: unchanged", `{"model":"gpt-4o","messages":[],"stream":true,"stream_options":{"include_usage":true}}`,
			chatClean, strings.Join(chatClean, "")},
		{"usage on a chunk with choices: unchanged", chatBodyStream, []string{chatRole, chatHi, finishWithUsage, chatDone},
			chatRole + chatHi + finishWithUsage + chatDone},
		{"usage chunk in one read with [DONE]", chatBodyStream, []string{chatRole, chatHi, chatFinish + chatUsageEv + chatDone},
			chatRole + chatHi + chatFinish + chatDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, stub, _ := streamPlugin(t, pathChat, tt.events)
			rec := do(p, pathChat, tt.body, nil)
			if rec.Code != 200 || rec.Body.String() != tt.wantBody {
				t.Fatalf("got %d %q,\nwant %q", rec.Code, rec.Body, tt.wantBody)
			}
			rep := stub.waitReport()
			if rep.ErrorClass != "" || string(rep.Usage) != chatUsage || rep.UsageSource != usageSourceUpstream {
				t.Errorf("report = %+v usage %s", rep, rep.Usage)
			}
		})
	}
}

func TestInStreamStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		event string
		want  int
	}{
		{"anthropic overloaded", anthOverload, 529},
		{"anthropic rate limit", anthRateLimit, 429},
		{"anthropic api_error", anthAPIError, 500},
		{"anthropic invalid request", anthInvalid, 400},
		{"anthropic unknown type", "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"new_error\"}}\n\n", 500},
		{"responses server_error", respFailed, 500},
		{"responses rate limit code", "data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"rate_limit_exceeded\"}}}\n\n", 429},
		{"responses invalid_prompt", "data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"invalid_prompt\"}}}\n\n", 400},
		{"responses error event", respErrorEvent, 429},
		{"chat server error", chatSrvError, 500},
		{"chat rate limit", chatRLError, 429},
		{"chat insufficient quota", `data: {"error":{"type":"insufficient_quota","code":"insufficient_quota"}}` + "\n\n", 429},
		{"chat invalid request", chatBadReq, 400},
		{"not json", "data: {oops\n\n", 500},
	}
	for _, tt := range tests {
		status, body := inStreamError([]byte(tt.event))
		if status != tt.want || !json.Valid(body) && tt.name != "not json" {
			t.Errorf("%s: status %d body %s, want %d", tt.name, status, body, tt.want)
		}
	}
}

// When every account fails in the stream, the client gets the failover-exhausted answer of
// the implied status, as for HTTP errors: nothing of any attempt was written.
func TestInStreamErrorExhausted(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("k1", upstreamReply{status: 200, events: []string{anthMsgStart, anthOverload}})
	up.set("k2", upstreamReply{status: 200, events: []string{anthMsgStart, anthPing, anthOverload}})
	stub := newContractStub(t, stubAccount{id: 1, apiKey: "k1", baseURL: up.srv.URL, anthropic: true},
		stubAccount{id: 2, apiKey: "k2", baseURL: up.srv.URL, anthropic: true})
	p := newTestPlugin(t, stub, nil)
	rec := do(p, pathMessages, msgBodyStream, nil)
	shape, typ, _ := errorOf(t, rec.Body.Bytes())
	if rec.Code != 503 || shape != "anthropic" || typ != typeOverloaded || strings.Contains(rec.Body.String(), "message_start") {
		t.Fatalf("got %d %s, want 503 overloaded_error and no event of either attempt", rec.Code, rec.Body)
	}
	rep := stub.waitReport()
	if rep.Status != 503 || rep.ErrorClass != classInStreamError || len(rep.Attempts) != 2 ||
		rep.Attempts[1].Status != 529 || rep.Attempts[1].ErrorClass != classInStreamError || !jsonsse.IsNull(rep.Usage) {
		t.Errorf("report = %+v", rep)
	}
}
