package plugin

import (
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

const copyBufferSize = 32 << 10

// copyBuffers pools the relay buffers of plain bodies: a 32 KB allocation per request is
// measurable in interpreted code.
var copyBuffers = sync.Pool{
	New: func() interface{} {
		b := make([]byte, copyBufferSize)
		return &b
	},
}

// streamBufferSize is the read buffer of an event stream, held for the stream's whole life
// (docs/design.md, "Memory per open stream"). A Read of a chunked upstream body returns
// at most what the transport's 4 KB bufio.Reader holds of its small chunks (one event each),
// so a larger buffer would only lie unused while the stream waits for its next event.
const streamBufferSize = 4 << 10

// streamBuffers pools the event streams' read buffers (relayStream, relayConverted, a
// hedge's race).
var streamBuffers = sync.Pool{
	New: func() interface{} {
		b := make([]byte, streamBufferSize)
		return &b
	},
}

// relay commits a non-SSE upstream response to the client and copies its body (the error
// relay of passthrough.go uses it too).
func relay(x *exchange, resp *http.Response, cancel context.CancelFunc) {
	relayWith(x, resp, cancel, nil)
}

// relayWith is relay with the attempt's watchdog (nil: none), whose idle timer watches the
// body. A 2xx reply is committed once its headers go out: a client that leaves after that
// leaves the attempt draining (read on within drainTimeout, output discarded, usage still
// scanned), so that the answer is billed from the upstream's own usage.
func relayWith(x *exchange, resp *http.Response, cancel context.CancelFunc, wd *watchdog) {
	defer cancel()
	defer resp.Body.Close()
	if x.keepAliveOnly {
		// Keep-alives promised the client an event stream; a plain body cannot follow.
		x.errorClass = classNotEventStream
		failInStream(x, typeUpstream, msgNotEventStream)
		return
	}
	if wd != nil {
		if resp.StatusCode/100 == 2 {
			if !commitAttempt(wd) {
				goneBeforeCommit(x)
				return
			}
			watchDrain(wd)
			x.billable = true
		}
		firstToken(wd)
		armIdle(wd, idleTimeout(x))
	}
	commitHeaders(x, resp, false)
	if resp.StatusCode >= 400 {
		x.errorClass = classUpstreamStatus
	}
	x.midEvent = true // raw chunks: no known event boundary (panic.go)
	sse := isEventStream(resp.Header.Get("Content-Type"))
	scan := newUsageScanner(usageFormatFor(x.path), sse)
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	draining := false
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if wd != nil {
				if wd.idle != nil {
					wd.idle.Reset(wd.idleD) // wd.progress, inlined: it runs per read
				}
			}
			x.outputBytes += int64(n)
			if x.billable && !draining && isClientGone(x) {
				draining = drain(x, wd)
			}
			if !draining {
				if _, werr := writeClient(x, buf[:n]); werr != nil {
					if !x.billable {
						markClientGone(x)
						break // the deferred cancel ends the upstream request
					}
					draining = drain(x, wd)
				} else if x.firstByte.IsZero() {
					x.firstByte = time.Now()
				}
			}
			feedUsage(scan, buf[:n])
		}
		if rerr != nil {
			if rerr != io.EOF && !draining {
				streamEnded(x, wd)
			}
			break
		}
	}
	x.usage = scannedUsage(scan)
	x.usageComplete = hasFinalUsage(scan)
	if draining {
		markClientGone(x)
	}
}

// commitHeaders sends the upstream status line and headers, unless a keep-alive already
// committed the response with 200 and text/event-stream: then the stream goes on without a
// second status line. A stream may get an error frame appended, so it never carries a
// Content-Length.
func commitHeaders(x *exchange, resp *http.Response, stream bool) {
	if x.written {
		x.keepAliveOnly = false
		return
	}
	h := x.rw.Header()
	copyResponseHeaders(h, resp.Header, stream)
	h.Set(headerRequestID, x.requestID)
	x.written = true
	x.status = resp.StatusCode
	x.rw.WriteHeader(resp.StatusCode)
}

// streamEnded classifies a read error from the upstream body after the status was sent.
func streamEnded(x *exchange, wd *watchdog) {
	if isClientGone(x) {
		x.status = statusClientClosed
		x.errorClass = classClientGone
		return
	}
	if x.errorClass != "" {
		return
	}
	x.errorClass = classStreamCut
	if wd != nil {
		if c := firedClass(wd); c != "" {
			x.errorClass = c
		}
	}
}

// idleTimeout is the stream-idle deadline of the current grant: its group's override or
// the plugin's default.
func idleTimeout(x *exchange) time.Duration {
	if x.grant == nil {
		return x.p.streamIdle
	}
	return durationMs(x.grant.StreamIdleTimeoutMs, x.p.streamIdle)
}

// firstTokenTimeout is the time-to-first-token deadline under g for a streaming request (0:
// none): its group's override or the plugin's default.
func firstTokenTimeout(x *exchange, g *grant) time.Duration {
	if !x.info.stream {
		return 0
	}
	if g == nil {
		return x.p.firstToken
	}
	return durationMs(g.FirstTokenTimeoutMs, x.p.firstToken)
}

// responseHeaderTimeout is the time-to-headers deadline under g for a non-streaming request
// (0: none); a stream is bounded by its first-token deadline instead.
func responseHeaderTimeout(x *exchange, g *grant) time.Duration {
	if x.info.stream {
		return 0
	}
	if g == nil {
		return x.p.headers
	}
	return durationMs(g.ResponseHeaderTimeoutMs, x.p.headers)
}

func isEventStream(contentType string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "text/event-stream")
}
