package plugin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// How a pass-through stream ends, read as the providers mean it (docs/design.md,
// "Streams"): an error event before the commit point fails the attempt over with the status
// its type implies (class in_stream_error) unless the error is the client's; after it the
// upstream's error ends the stream and the class is recorded. A Chat Completions stream that
// delivered finish_reason and its usage chunk is complete without `data: [DONE]`. The usage
// chunk of a Chat stream whose client did not ask for it is read and not passed on.

// classInStreamError: a 200 stream carried an error event (docs/design.md, "Streams",
// in-stream errors).
const classInStreamError = "in_stream_error"

// What an event means before the commit point (holdKind).
const (
	eventHeld   = 0 // commits nothing: may be held
	eventOutput = 1 // semantic output (or anything unknown): the commit point
	eventError  = 2 // an error event
)

// How the last event passed on ends a stream (terminalKind).
const (
	endNone     = 0
	endComplete = 1
	endError    = 2
)

var (
	finishKey  = []byte(`"finish_reason"`)
	choicesKey = []byte(`"choices"`)
)

// holdKind classifies one event before the commit point: one line scan, and for a Chat chunk
// without a type one small decode (the same the commit point always made).
func holdKind(block []byte) int {
	name, data := jsonsse.EventFields(block)
	if len(name) == 0 && len(data) == 0 {
		return eventHeld // comments, empty blocks
	}
	if bytes.HasPrefix(data, errJSON) {
		return eventError // Chat's error chunk, whatever the event is called
	}
	switch eventType(name, data) {
	case "response.created", "response.in_progress", "response.queued",
		"response.output_item.added", "response.content_part.added",
		"message_start", "ping", "content_block_start":
		return eventHeld
	case "error", "response.failed":
		return eventError
	case "":
		return chatChunkKind(data)
	}
	return eventOutput
}

// commitsNothing reports whether an event may be held before the commit point.
func commitsNothing(block []byte) bool { return holdKind(block) == eventHeld }

// terminalKind reports whether an event ends a stream, and how.
func terminalKind(block []byte) int {
	name, data := jsonsse.EventFields(block)
	switch eventType(name, data) {
	case "response.failed", "error":
		return endError
	case "response.completed", "response.incomplete", "message_stop":
		return endComplete
	}
	switch {
	case bytes.Equal(data, doneData):
		return endComplete
	case bytes.HasPrefix(data, errJSON):
		return endError
	}
	return endNone
}

// isTerminalEvent reports whether an event ends a stream: completion, failure or an error.
func isTerminalEvent(block []byte) bool { return terminalKind(block) != endNone }

// streamErrorProbe reads the error of an in-stream error event in any of the three shapes:
// {"error":{…}} (Chat, Anthropic's {"type":"error","error":{…}}), Responses' error event
// {"type":"error","code","message"} and its response.failed {"response":{"error":{…}}}.
type streamErrorProbe struct {
	Error    json.RawMessage       `json:"error"`
	Code     json.RawMessage       `json:"code"`
	Response jsonsse.ErrorEnvelope `json:"response"`
}

// inStreamError returns the status an error event implies and its data (the error body the
// failed attempt carries for controlsvc and the passthrough rules).
func inStreamError(block []byte) (int, []byte) {
	_, data := jsonsse.EventFields(block)
	var p streamErrorProbe
	if json.Unmarshal(data, &p) != nil {
		return http.StatusInternalServerError, data
	}
	raw := p.Error
	if jsonsse.IsNull(raw) {
		raw = p.Response.Error
	}
	code, _ := jsonsse.String(p.Code)
	typ := ""
	var d errorCodeDetail
	if len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &d) == nil {
		typ = d.Type
		if c, ok := jsonsse.String(d.Code); ok && c != "" {
			code = c
		}
	}
	if len(data) > maxErrorHead {
		data = data[:maxErrorHead]
	}
	return inStreamStatus(typ, code), data
}

// inStreamStatus is the HTTP status an in-stream error's type and code imply: Anthropic's
// types as Anthropic gives them (overloaded_error 529, rate_limit_error 429, api_error 500,
// invalid_request_error 400 …), OpenAI's rate limit and quota codes 429, the codes that name
// a fault of the request (invalid_*, image and context errors) 400, anything else 500.
func inStreamStatus(typ, code string) int {
	if s := anthropicTypeStatus(typ); s != http.StatusInternalServerError {
		return s
	}
	if s := anthropicTypeStatus(code); s != http.StatusInternalServerError {
		return s
	}
	tc := strings.ToLower(typ + " " + code)
	switch {
	case strings.Contains(tc, "rate_limit"), strings.Contains(tc, "insufficient_quota"):
		return http.StatusTooManyRequests
	case strings.Contains(tc, "invalid"), strings.Contains(tc, "image"),
		strings.Contains(tc, "context_length"), strings.Contains(tc, "unsupported"),
		strings.Contains(tc, "content_policy"), strings.Contains(tc, "empty_"):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// inStreamFailure fails the current attempt over on an error event before the commit point
// (nil when the error is the request's own, which is relayed as the stream's end instead):
// the account is marked like an HTTP error of the implied status (quota when the event says
// the account is out of credit, as classifyStatusFailure does for an HTTP answer), and the
// attempt keeps the usage the held events announced.
func inStreamFailure(x *exchange, ev, held []byte, scan *usageScanner) *failedAttempt {
	status, body := inStreamError(ev)
	if !isFailoverStatus(status) && !quotaFault(status, body) { // out of credit: a 400 too
		return nil
	}
	markInStreamError(x, status)
	heldUsage(x, scan, held)
	f := &failedAttempt{AccountID: x.grant.AccountID, Status: status, ErrorClass: classInStreamError, Body: body}
	classifyStatusFailure(x, f) // an account out of credit can say so in a stream too
	return f
}

// markInStreamError records an error event on the current attempt: its class, and the status
// the event implied, by which controlsvc marks the account as for an HTTP error.
func markInStreamError(x *exchange, status int) {
	markLastAttempt(x, classInStreamError)
	if n := len(x.attempts); n > 0 {
		x.attempts[n-1].Status = status
	}
}

// finalEvent passes on the last event of a body that ended without its blank line, adding
// the blank line so that the client's parser dispatches it. done is true when the attempt is
// over: failed over, or cut because the client left before the commit point.
func finalEvent(x *exchange, resp *http.Response, wd *watchdog, st *streamState, tail, pending []byte,
	scan *usageScanner, ends *chatEnd) (*failedAttempt, bool) {
	if !st.committed {
		kind := holdKind(tail)
		if kind == eventHeld && !isTerminalEvent(tail) {
			return nil, false // nothing to commit: the attempt fails over
		}
		if kind == eventError {
			if f := inStreamFailure(x, tail, pending, scan); f != nil {
				return f, true
			}
			st.relayed = true
		}
		if !commitStream(x, resp, wd) {
			goneBeforeCommit(x)
			return nil, true
		}
		st.committed = true
	}
	if !st.draining {
		body := bytes.TrimRight(chatForClient(ends, pending), "\r\n")
		if len(bytes.TrimSpace(body)) > 0 {
			w := make([]byte, 0, len(body)+len(jsonsse.BlankLF))
			w = append(append(w, body...), jsonsse.BlankLF...)
			if _, err := writeClient(x, w); err != nil {
				st.draining = drain(x, wd)
			}
		}
	}
	feedUsage(scan, pending)
	observeChatEnd(ends, pending)
	st.end = terminalKind(tail)
	st.last = tail
	return nil, false
}

// inStreamEnded records a stream that the upstream ended with an error event, relayed to the
// client as it came: class in_stream_error, the attempt with the status the event implied.
// An error of the request's own that came before any output bills nothing: the usage the
// held events announced stays on the attempt (the account's cost), as on a failover.
func inStreamEnded(x *exchange, st streamState, ev []byte) {
	status, _ := inStreamError(ev)
	x.errorClass = classInStreamError
	markInStreamError(x, status)
	if !st.relayed {
		return
	}
	x.billable = false
	if n := len(x.attempts); n > 0 {
		x.attempts[n-1].Usage = rawJSON(x.usage)
	}
	x.usage = nil
	x.usageComplete = false
}
