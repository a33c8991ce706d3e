package plugin

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/poolgate/poolgate/plugin/convert"
	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Error classes in reports (docs/design.md, POST /internal/v1/reports).
const (
	classUpstreamStatus     = "upstream_status"
	classTransport          = "transport"
	classClientGone         = "client_gone"
	classStreamCut          = "stream_cut"
	classControlUnavailable = "control_unavailable"
	classRejected           = "rejected"
	classInternal           = "internal"
)

// exchange is the state of one client request on a handled path, from validation to the
// completion report.
type exchange struct {
	p         *Poolgate
	rw        http.ResponseWriter
	req       *http.Request
	path      string
	requestID string
	start     time.Time

	apiKey string
	body   []byte // the client's body, never modified: every attempt starts from it
	// inputBytes is len(body), kept when a committed stream lets go of the body
	// (forgetRequest).
	inputBytes int64
	info       requestInfo
	// sessionHash keys the sticky binding of the request's session (session.go).
	sessionHash string
	// sessionSource is the admit request's session_source: "explicit" or "content".
	sessionSource string

	// sent is the last body built for the upstream (rewritten by bodyFor, or converted by
	// convertedBody: a request takes one of the two), for sentFor (sentKey).
	sent    []byte
	sentFor string
	// convTools maps a converted request's tool names back and holds the conversion's
	// warnings for the record (plugin/convert, agents.go); nil on other requests.
	convTools *convert.Tools

	grant    *grant  // the current grant; nil until controlsvc granted one
	exclude  []int64 // accounts already tried
	attempts []attemptReport
	// sameRetried lists the accounts this request already retried on (retry.go).
	sameRetried []int64
	// hedged: the request raced a hedge already (hedge.go); once per request.
	hedged bool

	written bool // a status line went to the client
	// keepAliveOnly: keep-alives committed the response (200, text/event-stream) and
	// nothing else was written yet, so an error must go in the stream (keepalive.go).
	keepAliveOnly bool
	// midEvent: what the client got may end inside an SSE event (panic.go).
	midEvent   bool
	status     int    // the status the client got; 499 when it went away
	errorClass string // "" on success
	firstByte  time.Time
	usage      []byte

	// Billing facts of the answering attempt (docs/billing.md, "Disconnects, drains and estimates"):
	// billable once it was committed to the client (a stream past its commit point, a 2xx
	// reply), usageComplete once its final usage was seen (else controlsvc estimates), and
	// outputBytes, the bytes of its upstream body relayed or drained.
	billable      bool
	usageComplete bool
	outputBytes   int64

	// Latencies of the report: admitting is the time spent in admit calls, waits included;
	// firstSend is when the first attempt went upstream, readmitting the part of admitting
	// after it (re-admissions), so that upstream time excludes it; attemptSent is when the
	// current attempt went upstream.
	admitting   time.Duration
	readmitting time.Duration
	firstSend   time.Time
	attemptSent time.Time

	// stall watches the writes to the client (stall.go).
	stall *stallGuard
	// relay is the stream past its commit point that ServeHTTP relays (relayCommitted);
	// nil until then, and for every other reply.
	relay *committedStream
}

func newExchange(p *Poolgate, rw http.ResponseWriter, req *http.Request, path string) *exchange {
	return &exchange{
		p:         p,
		rw:        rw,
		req:       req,
		path:      path,
		requestID: newRequestID(),
		start:     time.Now(),
		exclude:   make([]int64, 0, 4),
		stall:     newStallGuard(p.writeStall, rw, p.control.leases),
	}
}

// runExchange takes the request through validation, admission and forwarding. Every
// branch ends in a written response.
// A function, not a method: the stream's call path (ServeHTTP → runExchange →
// forwardExchange → respond → relayStream) stays blocked in Body.Read for the stream's life,
// and under Yaegi each method level there nests reflect calls and holds a method value
// (docs/yaegi.md, "A call of an interpreted method"; docs/design.md, "Memory per open
// stream").
func runExchange(x *exchange) {
	if !prepare(x) || !admit(x, nil) {
		return
	}
	forwardExchange(x)
}

// prepare does what comes before admission: the key's format, the body's one read and one
// pass (validateBody), the session seed. False when it answered the request instead.
func prepare(x *exchange) bool {
	// Cheap checks first: no body byte is read and nothing is allocated for a request whose
	// key cannot be one (docs/security.md, "Nothing costly before authentication").
	x.apiKey = extractAPIKey(x.req.Header)
	if !wellFormedKey(x.apiKey) {
		writeError(x, newClientError(http.StatusUnauthorized, typeAuthentication, msgInvalidAPIKey))
		return false
	}
	body, e := readBody(x.req, x.p.maxBody)
	if e != nil {
		writeError(x, e)
		return false
	}
	x.body = body
	x.inputBytes = int64(len(body))
	info, e := validateBody(x.path, body)
	if e != nil {
		writeError(x, e)
		return false
	}
	x.info = info
	seed := sessionSeed(x.path, x.req.Header, &x.info, x.apiKey)
	x.sessionHash = hashSeed(seed)
	x.sessionSource = seedSource(seed)
	return true
}

// finish runs deferred: it answers after a panic (a 500, or the stream's terminal error:
// panic.go), makes sure something was written, and sends the one report of the grant, which
// also releases its slots in controlsvc.
func finish(x *exchange) {
	cut := false
	if r := recover(); r != nil {
		cut = endAfterPanic(x)
	}
	defer cutIf(x, cut) // after the report
	if !x.written || (x.keepAliveOnly && !isClientGone(x)) {
		// A path that wrote nothing is a bug; its report must not read as an answer (a 200
		// after keep-alives with no error class would be billed by estimate).
		if x.errorClass == "" {
			x.errorClass = classInternal
		}
		writeError(x, newClientError(http.StatusInternalServerError, typeAPI, msgInternal))
	}
	if x.grant == nil {
		return
	}
	unregister(x.p.control.leases, x.grant.GrantID)
	enqueue(x.p.control.reports, buildReport(x))
}

// isClientGone reports whether the client disconnected or stopped reading (stall.go). A
// plain function with stallGuard.isStalled inlined: it runs per read of a stream, and an
// interpreted method call costs about 5x a function call under Yaegi (docs/yaegi.md).
func isClientGone(x *exchange) bool {
	if x.req.Context().Err() != nil {
		return true
	}
	g := x.stall
	if g == nil {
		return false
	}
	g.mu.Lock()
	stalled := g.stalled
	g.mu.Unlock()
	return stalled
}

// abandon records that the client went away. Writing the error is harmless when the
// connection is gone and keeps "every path writes a response" true.
func abandon(x *exchange) {
	if !x.written {
		writeError(x, newClientError(statusClientClosed, typeAPI, msgClientGone))
	}
	x.status = statusClientClosed
	x.errorClass = classClientGone
}

// writeError answers with e unless something was written already; after keep-alives alone
// it ends the stream with e instead. A panicking writer is contained here, because
// writeError also runs from finish.
func writeError(x *exchange, e *clientError) {
	if x.written {
		if x.keepAliveOnly {
			failInStream(x, e.typ, e.msg)
		}
		return
	}
	x.written = true
	x.status = e.status
	defer func() { _ = recover() }()
	writeShapedError(x.rw, errorShape(x), x.requestID, e)
}

// respondRejection copies a controlsvc refusal to the client (writeRejection) unless
// something was written already; after keep-alives alone it ends the stream with the
// refusal's error instead.
func respondRejection(x *exchange, r *rejection) {
	if x.written {
		if x.keepAliveOnly {
			typ, msg := jsonsse.ErrorFields(r.body, typeAPI, msgUnavailable)
			failInStream(x, typ, msg)
		}
		return
	}
	x.written = true
	x.status = r.status
	defer func() { _ = recover() }()
	writeRejection(x.rw, x.requestID, r)
}

// failInStream ends a response that keep-alives committed with a terminal error in the
// client's protocol: the status line is out, so an error body can no longer be sent.
func failInStream(x *exchange, typ, msg string) {
	x.keepAliveOnly = false
	writeStreamError(x.rw, x.path, x.info.model, typ, msg)
}

// newRequestID returns "req_" and 24 random hex digits.
func newRequestID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "req_t" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return "req_" + hex.EncodeToString(b[:])
}

func millisSince(t time.Time) int64 {
	return int64(time.Since(t) / time.Millisecond)
}
