package plugin

// The relay of a converted attempt (converted.go): the Anthropic stream is fed through the
// converter (plugin/convert, stream.go) read by read; the converted events are held until the commit
// point, then written and flushed batch by batch, or, for a client that did not stream,
// rendered as one response object at the end. A client that leaves after the commit point
// leaves the attempt draining: the stream is converted on within drainTimeout (the
// watchdog) for its usage, and nothing more is written.

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/poolgate/poolgate/plugin/convert"
	"github.com/poolgate/poolgate/plugin/wire"
)

// convertedAttempt is the relay of one attempt's Anthropic stream.
type convertedAttempt struct {
	x         *exchange
	wd        *watchdog
	conv      *convert.Stream
	held      []byte // converted events before the commit point (streaming clients)
	committed bool
	draining  bool   // the client left after the commit point
	upstream  string // the upstream's request id, passed on as x-upstream-request-id
}

// relayConverted converts an upstream 2xx reply. It returns the failed attempt when the reply
// failed before the commit point, so that the caller fails over; nil when the exchange is
// answered.
func relayConverted(x *exchange, resp *http.Response, wd *watchdog) *failedAttempt {
	defer resp.Body.Close()
	if !isEventStream(resp.Header.Get("Content-Type")) {
		// Asked with stream: true, an Anthropic account always streams.
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
		markLastAttempt(x, classNotEventStream)
		return &failedAttempt{AccountID: x.grant.AccountID, Status: resp.StatusCode, ErrorClass: classNotEventStream}
	}
	armIdle(wd, idleTimeout(x))
	c := &convertedAttempt{x: x, wd: wd, conv: convert.NewStream(x.info.model, newResponseID(), time.Now().Unix()),
		upstream: upstreamRequestID(resp.Header)}
	c.conv.SetTools(x.convTools)
	bp := streamBuffers.Get().(*[]byte)
	defer streamBuffers.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if wd.idle != nil {
				wd.idle.Reset(wd.idleD) // wd.progress, inlined: it runs per read
			}
			x.outputBytes += int64(n)
			if f, done := stepConverted(c, c.conv.Feed(buf[:n])); done {
				return f
			}
		}
		if rerr == io.EOF {
			f, _ := stepConverted(c, c.conv.Finish())
			return f
		}
		if rerr != nil {
			return broken(c)
		}
	}
}

// stepConverted passes on the events converted from one read. done is true when the attempt
// is over: answered (nil) or failed before the commit point. It and writeConverted are plain
// functions: they run per read, and an interpreted method call costs about 5x a function
// call under Yaegi (docs/yaegi.md).
func stepConverted(c *convertedAttempt, out []byte) (*failedAttempt, bool) {
	x := c.x
	status := c.conv.FinalStatus()
	if !c.committed {
		if status == convert.StatusFailed && !c.conv.Started() {
			return failBeforeCommit(c), true
		}
		if x.info.stream {
			c.held = append(c.held, out...)
		}
		if !c.conv.Started() && status == "" && len(c.held) <= maxHold {
			return nil, false
		}
		if !c.commit() {
			return nil, true
		}
		out = nil // held, and written by commit
	}
	if x.info.stream && len(out) > 0 {
		writeConverted(c, out)
	}
	if status == "" {
		return nil, false
	}
	end(c)
	return nil, true
}

// commit marks the first semantic output: from here on the account is not switched. A
// streaming client gets the status line (unless keep-alives sent it) and the held events.
// False when the client left first, which cut the attempt (answered 499).
func (c *convertedAttempt) commit() bool {
	x := c.x
	if !commitAttempt(c.wd) {
		goneBeforeCommit(x)
		return false
	}
	c.committed = true
	watchDrain(c.wd)
	x.billable = true
	firstToken(c.wd)
	x.firstByte = time.Now()
	if !x.info.stream {
		return true
	}
	if x.written {
		x.keepAliveOnly = false
	} else {
		h := x.rw.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		h.Set(headerRequestID, x.requestID)
		setUpstreamID(c, h)
		x.written = true
		x.status = http.StatusOK
		x.rw.WriteHeader(http.StatusOK)
	}
	held := c.held
	c.held = nil
	writeConverted(c, held)
	return true
}

// writeConverted sends converted events to a streaming client and flushes. Once the client is gone
// the attempt drains and nothing more is written.
func writeConverted(c *convertedAttempt, p []byte) {
	x := c.x
	if !c.draining && isClientGone(x) {
		c.draining = drain(x, c.wd)
	}
	if c.draining {
		return
	}
	if _, err := writeClient(x, p); err != nil {
		c.draining = drain(x, c.wd)
	}
}

// end finishes an answered attempt: the usage for the report and, for a client that did not
// stream, the response object or the error.
func end(c *convertedAttempt) {
	x := c.x
	conv := c.conv
	x.usage = conv.AnthropicUsage()
	x.usageComplete = conv.UsageComplete()
	if c.draining || (!x.info.stream && isClientGone(x)) {
		markClientGone(x) // billed from the usage drained (or an estimate)
		return
	}
	if conv.FinalStatus() == convert.StatusFailed && x.errorClass == "" {
		x.errorClass = classStreamIncomplete
		markLastAttempt(x, x.errorClass)
		if typ, _, up := conv.UpstreamError(); up {
			x.errorClass = classInStreamError
			markInStreamError(x, anthropicTypeStatus(typ))
		}
	}
	if x.info.stream || x.written {
		return
	}
	if conv.FinalStatus() == convert.StatusFailed {
		status := http.StatusBadGateway
		if typ, _, up := conv.UpstreamError(); up && anthropicTypeStatus(typ) < 500 {
			status = anthropicTypeStatus(typ)
		}
		code, msg := conv.Failure()
		writeError(x, newClientError(status, code, msg))
		return
	}
	body := conv.ResponseJSON()
	if x.path == pathResponsesCompact {
		body = compactOutput(x.info.fields.Input, outputText(conv))
	}
	defer func() { _ = recover() }()
	h := x.rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set(headerRequestID, x.requestID)
	setUpstreamID(c, h)
	x.written = true
	x.status = http.StatusOK
	x.rw.WriteHeader(http.StatusOK)
	_, _ = writeClient(x, body)
}

// failBeforeCommit ends an attempt whose stream failed before any semantic output: an
// Anthropic error event (a failover status, like overloaded_error, fails over; another is
// answered as the upstream's error) or a stream that ended without message_stop. The
// attempt's usage is kept on it: its account consumed the input.
func failBeforeCommit(c *convertedAttempt) *failedAttempt {
	x := c.x
	if n := len(x.attempts); n > 0 {
		x.attempts[n-1].Usage = rawJSON(c.conv.AnthropicUsage())
	}
	typ, msg, up := c.conv.UpstreamError()
	if !up {
		markLastAttempt(x, classStreamIncomplete)
		return &failedAttempt{AccountID: x.grant.AccountID, ErrorClass: classStreamIncomplete}
	}
	status := anthropicTypeStatus(typ)
	markInStreamError(x, status)
	if !isFailoverStatus(status) {
		x.errorClass = classInStreamError
		writeError(x, newClientError(status, typ, msg))
		return nil
	}
	head := codeErrorBody(typ, msg)
	return &failedAttempt{AccountID: x.grant.AccountID, Status: status, ErrorClass: classInStreamError, Body: head}
}

// broken handles a read error: the client went away, a deadline fired or the connection
// broke. Before the commit point the attempt fails over (or the request times out); after it
// the response fails in the stream.
func broken(c *convertedAttempt) *failedAttempt {
	x := c.x
	if !c.committed && isClientGone(x) {
		goneBeforeCommit(x)
		return nil
	}
	if c.committed && (c.draining || isClientGone(x)) {
		x.usage = c.conv.AnthropicUsage()
		x.usageComplete = c.conv.UsageComplete()
		markClientGone(x)
		return nil
	}
	class := classStreamCut
	if fired := firedClass(c.wd); fired != "" {
		class = fired
	}
	if !c.committed {
		if class == classRequestTimeout {
			timedOut(x)
			return nil
		}
		if n := len(x.attempts); n > 0 {
			x.attempts[n-1].Usage = rawJSON(c.conv.AnthropicUsage())
		}
		markLastAttempt(x, class)
		return &failedAttempt{AccountID: x.grant.AccountID, ErrorClass: class}
	}
	msg := wire.MsgStreamCut
	switch class {
	case classStreamIdleTimeout:
		msg = msgStreamIdle
	case classRequestTimeout:
		msg = msgRequestTimout
	}
	x.errorClass = class
	markLastAttempt(x, class)
	out := c.conv.Fail(typeUpstream, msg)
	if x.info.stream {
		writeConverted(c, out)
	}
	end(c)
	return nil
}

// setUpstreamID names the answering upstream's request id to the client.
func setUpstreamID(c *convertedAttempt, h http.Header) {
	if c.upstream != "" {
		h[headerUpstreamRequestID] = []string{c.upstream}
	}
}
