package plugin

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// A streaming request whose upstream answered with a plain body after keep-alives committed
// the response to an event stream.
const (
	classNotEventStream = "not_event_stream"
	msgNotEventStream   = "Upstream returned a non-streaming response"
)

const (
	copyBufferSize = 32 << 10
	// maxTee bounds how much of a JSON reply is kept to read its usage at the end.
	maxTee = 1 << 20
	// maxCarry bounds one SSE line kept across reads; a longer line is skipped.
	maxCarry = 4 << 20
)

// copyBuffers pools the relay buffers: a 32 KB allocation per request is measurable in
// interpreted code (traefik-yaegi-lab.md §5).
var copyBuffers = sync.Pool{
	New: func() interface{} {
		b := make([]byte, copyBufferSize)
		return &b
	},
}

// relay commits a non-SSE upstream response to the client and copies its body (the error
// relay of passthrough.go uses it too).
func (x *exchange) relay(resp *http.Response, cancel context.CancelFunc) {
	x.relayWith(resp, cancel, nil)
}

// relayWith is relay with the attempt's watchdog (nil: none), whose idle timer watches the
// body.
func (x *exchange) relayWith(resp *http.Response, cancel context.CancelFunc, wd *watchdog) {
	defer cancel()
	defer resp.Body.Close()
	if x.keepAliveOnly {
		// Keep-alives promised the client an event stream; a plain body cannot follow.
		x.errorClass = classNotEventStream
		x.failInStream(typeUpstream, msgNotEventStream)
		return
	}
	if wd != nil {
		wd.firstToken()
		wd.armIdle(x.idleTimeout())
	}
	x.commitHeaders(resp, false)
	if resp.StatusCode >= 400 {
		x.errorClass = classUpstreamStatus
	}
	sse := isEventStream(resp.Header.Get("Content-Type"))
	var flusher http.Flusher
	if sse {
		if f, ok := x.rw.(http.Flusher); ok {
			flusher = f
		}
	}
	scan := newUsageScanner(usageFormatFor(x.path), sse)
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if wd != nil {
				wd.progress()
			}
			if _, werr := x.rw.Write(buf[:n]); werr != nil {
				x.status = statusClientClosed
				x.errorClass = classClientGone
				break // the deferred cancel ends the upstream request
			}
			if x.firstByte.IsZero() {
				x.firstByte = time.Now()
			}
			if flusher != nil {
				flusher.Flush()
			}
			scan.feed(buf[:n])
		}
		if rerr != nil {
			if rerr != io.EOF {
				x.streamEnded(wd)
			}
			break
		}
	}
	x.usage = scan.result()
}

// commitHeaders sends the upstream status line and headers, unless a keep-alive already
// committed the response with 200 and text/event-stream: then the stream goes on without a
// second status line. A stream may get an error frame appended, so it never carries a
// Content-Length.
func (x *exchange) commitHeaders(resp *http.Response, stream bool) {
	if x.written {
		x.keepAliveOnly = false
		return
	}
	h := x.rw.Header()
	copyHeaders(h, resp.Header, droppedResponseHeaders)
	if stream {
		h.Del("Content-Length")
	}
	h.Set(headerRequestID, x.requestID)
	x.written = true
	x.status = resp.StatusCode
	x.rw.WriteHeader(resp.StatusCode)
}

// streamEnded classifies a read error from the upstream body after the status was sent.
func (x *exchange) streamEnded(wd *watchdog) {
	if x.clientGone() {
		x.status = statusClientClosed
		x.errorClass = classClientGone
		return
	}
	if x.errorClass != "" {
		return
	}
	x.errorClass = classStreamCut
	if wd != nil {
		if c := wd.firedClass(); c != "" {
			x.errorClass = c
		}
	}
}

// idleTimeout is the stream-idle deadline of the current grant: its group's override or
// the plugin's default.
func (x *exchange) idleTimeout() time.Duration {
	if x.grant == nil {
		return x.p.streamIdle
	}
	return durationMs(x.grant.StreamIdleTimeoutMs, x.p.streamIdle)
}

// firstTokenTimeout is the time-to-first-token deadline of the current grant for a
// streaming request (0: none).
func (x *exchange) firstTokenTimeout() time.Duration {
	if !x.info.stream {
		return 0
	}
	if x.grant == nil {
		return x.p.firstToken
	}
	return durationMs(x.grant.FirstTokenTimeoutMs, x.p.firstToken)
}

func isEventStream(contentType string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "text/event-stream")
}

var (
	usageKey   = []byte(`"usage"`)
	dataPrefix = []byte("data:")
)

// usageScanner pulls the usage object out of a reply as it streams by. JSON replies are
// teed (bounded) and decoded once at the end. SSE replies are scanned with bytes.Index for
// `"usage"`, and only complete data lines that contain it are decoded; the unfinished last
// line of a read is carried over to the next.
type usageScanner struct {
	format string
	sse    bool

	tee      []byte
	overflow bool

	carry    []byte
	skipping bool // inside an over-long line: ignore bytes until its end

	final []byte // responses/chat usage, or anthropic message_delta usage
	start []byte // anthropic message_start usage
}

func newUsageScanner(format string, sse bool) *usageScanner {
	return &usageScanner{format: format, sse: sse}
}

func (s *usageScanner) feed(p []byte) {
	if !s.sse {
		if s.overflow {
			return
		}
		if len(s.tee)+len(p) > maxTee {
			s.overflow = true
			s.tee = nil
			return
		}
		s.tee = append(s.tee, p...)
		return
	}
	if !s.skipping && len(s.carry) == 0 && len(p) > 0 && p[len(p)-1] == '\n' && bytes.Index(p, usageKey) < 0 {
		return // whole lines without usage: the common read of a stream, one stdlib call
	}
	if s.skipping || len(s.carry) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.extendCarry(p)
			return
		}
		if !s.skipping {
			s.carry = append(s.carry, p[:i]...)
			s.scanLines(s.carry)
		}
		s.carry = s.carry[:0]
		s.skipping = false
		p = p[i+1:]
	}
	last := bytes.LastIndexByte(p, '\n')
	s.scanLines(p[:last+1])
	s.extendCarry(p[last+1:])
}

func (s *usageScanner) extendCarry(p []byte) {
	if s.skipping || len(p) == 0 {
		return
	}
	if len(s.carry)+len(p) > maxCarry {
		s.carry = s.carry[:0]
		s.skipping = true
		return
	}
	s.carry = append(s.carry, p...)
}

// scanLines decodes the lines of b (complete lines, or one line without its newline) that
// contain a non-null "usage".
func (s *usageScanner) scanLines(b []byte) {
	off := 0
	for off < len(b) {
		i := bytes.Index(b[off:], usageKey)
		if i < 0 {
			return
		}
		pos := off + i
		if usageIsNull(b[pos+len(usageKey):]) {
			off = pos + len(usageKey)
			continue
		}
		lineStart := bytes.LastIndexByte(b[:pos], '\n') + 1
		lineEnd := len(b)
		if j := bytes.IndexByte(b[pos:], '\n'); j >= 0 {
			lineEnd = pos + j
		}
		s.line(b[lineStart:lineEnd])
		off = lineEnd + 1
	}
}

// usageIsNull reports whether the bytes after `"usage"` are `:null` (spaces allowed):
// Chat chunks carry "usage":null until the last one.
func usageIsNull(rest []byte) bool {
	rest = bytes.TrimLeft(rest, " \t")
	if len(rest) == 0 || rest[0] != ':' {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(rest[1:], " \t"), []byte("null"))
}

func (s *usageScanner) line(l []byte) {
	l = bytes.TrimSpace(l)
	if !bytes.HasPrefix(l, dataPrefix) {
		return
	}
	kind, usage := sseUsage(s.format, bytes.TrimSpace(l[len(dataPrefix):]))
	switch kind {
	case sseFinalUsage:
		s.final = usage
	case sseAnthropicDelta:
		s.final = mergeAnthropicUsage(s.final, usage) // several deltas merge field by field too
	case sseAnthropicStart:
		s.start = usage
	}
}

// result returns the raw usage JSON of the reply, or nil.
func (s *usageScanner) result() []byte {
	if !s.sse {
		if s.overflow || len(s.tee) == 0 {
			return nil
		}
		return usageFromBody(s.tee)
	}
	if len(s.carry) > 0 && !s.skipping {
		// The stream ended without a final newline: the last line is still complete JSON.
		s.scanLines(s.carry)
		s.carry = s.carry[:0]
	}
	if s.format == usageAnthropic {
		return mergeAnthropicUsage(s.start, s.final)
	}
	return s.final
}
