package plugin

import (
	"bytes"
	"io"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
	"github.com/poolgate/poolgate/plugin/wire"
)

// The commit point of a streamed reply (docs/design.md, "Streams"). Until the first
// semantic output, the upstream headers and the events that commit nothing (comments,
// response.created, response.in_progress, empty output items, a role-only first chat chunk,
// Anthropic's message_start, ping and empty content_block_start) are held, so that a
// failure can still move the request to another account. From the first semantic output on,
// the account is never switched: a failure ends the stream with a terminal error in the
// client's protocol (writeStreamError), and a stream that ends without its terminal event
// gets one too.
//
// After the commit, only complete events (up to the last blank line) are passed on, so that
// an error frame never lands inside a half-sent event. A client that leaves before the
// commit point cuts the attempt at once (nothing billed); after it the attempt drains
// (docs/billing.md, "Disconnects, drains and estimates").

const (
	// maxHold bounds the bytes held before the commit point; past it the stream commits.
	maxHold = 1 << 20

	msgStreamIdle    = "Upstream stream idle timeout"
	msgRequestTimout = "Request timed out"
)

// classStreamIncomplete: the upstream ended the body cleanly without a terminal event.
const classStreamIncomplete = "stream_incomplete"

// relayStream relays an SSE reply with a commit point. It returns the failed attempt when
// the reply failed before the commit point, so that the caller fails over; nil when the
// exchange is answered (an in-stream error, the client gone, a stream that ended before its
// commit point) or committed. A committed stream is not relayed here: it is handed up the
// call path in x.relay, and ServeHTTP relays the rest of it (relayCommitted), so that the
// attempt loop's frames are gone while the stream stays open for minutes (docs/design.md,
// "Memory per open stream").
func relayStream(x *exchange, resp *http.Response, wd *watchdog) *failedAttempt {
	bp := streamBuffers.Get().(*[]byte)
	defer endRelay(x, resp, bp) // unless handed on
	armIdle(wd, idleTimeout(x))

	scan := newUsageScanner(usageFormatFor(x.path), true)
	buf := *bp
	var pending []byte // bytes read and not yet written
	scanned := 0       // complete events of pending already classified
	relayed := false   // an error event of the request's own was the commit point (streamend.go)
	ends := newChatEnd(x)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if wd.idle != nil {
				wd.idle.Reset(wd.idleD) // wd.progress, inlined: a call per read costs µs under Yaegi
			}
			x.outputBytes += int64(n)
			pending = append(pending, buf[:n]...)
			committed := false
			for {
				end := eventBoundary(pending[scanned:])
				if end < 0 {
					break
				}
				ev := pending[scanned : scanned+end]
				scanned += end
				kind := holdKind(ev)
				if kind == eventError {
					// Nothing was written yet: a failover leaves no trace at the client.
					if f := inStreamFailure(x, ev, pending[:scanned], scan); f != nil {
						return f
					}
					relayed = true
				}
				if kind != eventHeld {
					committed = true
					break
				}
			}
			if !committed && len(pending) > maxHold {
				committed = true
			}
			if committed {
				if !commitStream(x, resp, wd) {
					goneBeforeCommit(x)
					return nil
				}
				x.relay = &committedStream{resp: resp, wd: wd, bp: bp, scan: scan, ends: ends,
					pending: pending, relayed: relayed, rerr: rerr}
				return nil
			}
		}
		if rerr != nil {
			st := streamState{relayed: relayed, end: terminalKind(nil)}
			return streamStopped(x, resp, wd, rerr, st, pending, scan, ends)
		}
	}
}

// committedStream is a stream past its commit point, as relayStream hands it on: its
// response, deadlines and buffer, the usage and ending scanners, the bytes read and not yet
// written, and the error of the read that committed it (a last read may end the body too).
type committedStream struct {
	resp    *http.Response
	wd      *watchdog
	bp      *[]byte
	scan    *usageScanner
	ends    *chatEnd
	pending []byte
	relayed bool
	rerr    error
}

// endRelay releases what relayStream took, unless it handed the stream on.
func endRelay(x *exchange, resp *http.Response, bp *[]byte) {
	if x.relay != nil && x.relay.resp == resp {
		return
	}
	resp.Body.Close()
	streamBuffers.Put(bp)
}

// forgetRequest lets go of the request's body and what was decoded or built from it, once
// a stream is committed and no attempt will be sent again: an agent's request can be
// hundreds of kilobytes, and a stream may stay open for minutes (docs/design.md, "Memory per
// open stream"). What the report needs of it is kept (inputBytes, info's scalars).
func forgetRequest(x *exchange) {
	x.body = nil
	x.sent = nil
	x.info.fields = requestFields{}
	x.info.items = nil
}

// relayCommitted relays a committed stream to its end, from the top of the call path
// (ServeHTTP), and then releases its attempt. After the commit only complete events (up to
// the last blank line) are passed on; a client that leaves leaves the attempt draining: it
// is read on within drainTimeout (the watchdog), its output discarded and its usage still
// scanned.
func relayCommitted(x *exchange) {
	c := x.relay
	forgetRequest(x)
	watchDrain(c.wd) // here, at the top of the call path (see watchdog)
	defer c.wd.release()
	defer streamBuffers.Put(c.bp)
	defer c.resp.Body.Close()
	wd, scan, ends := c.wd, c.scan, c.ends
	buf := *c.bp
	pending, rerr := c.pending, c.rerr
	fresh := len(pending) > 0
	draining := false
	// last is a copy of the last batch of complete events passed on; its last event, and
	// whether that ends the stream, is only looked for once the body ends, so that a read
	// costs no event parsing (every stdlib call from interpreted code costs about 1 µs of
	// reflection, a call of the plugin's own more: tests/yaegi/stagebench).
	var last []byte
	for {
		if fresh {
			if !draining && isClientGone(x) {
				draining = drain(x, wd)
			}
			if draining {
				feedUsage(scan, pending)
				observeChatEnd(ends, pending)
				pending = pending[:0]
			} else {
				cut := lastEventBoundary(pending)
				whole := true
				if len(pending) > jsonsse.MaxCarry {
					whole = cut == len(pending)
					cut = len(pending) // an event that never ends: pass it on as it comes
				}
				if cut > 0 {
					out := pending[:cut]
					w := out
					if ends.chat {
						w = chatForClient(ends, out)
					}
					if len(w) > 0 {
						if _, werr := stallWrite(x.stall, w); werr != nil { // writeClient, inlined
							draining = drain(x, wd)
						}
					}
					x.midEvent = !whole // panic.go
					feedUsage(scan, out)
					if ends.chat {
						observeChatEnd(ends, out)
					}
					last = append(last[:0], out...)
					pending = append(pending[:0], pending[cut:]...)
				}
			}
		}
		if rerr != nil {
			last = lastEvent(last)
			st := streamState{committed: true, draining: draining, end: terminalKind(last), relayed: c.relayed, last: last}
			streamStopped(x, c.resp, wd, rerr, st, pending, scan, ends) // nil: a committed stream never fails over
			return
		}
		var n int
		n, rerr = c.resp.Body.Read(buf)
		fresh = n > 0
		if fresh {
			if wd.idle != nil {
				wd.idle.Reset(wd.idleD)
			}
			x.outputBytes += int64(n)
			pending = append(pending, buf[:n]...)
		}
	}
}

// commitStream passes the commit point of a stream: the status line and headers go out
// (unless keep-alives sent them). False when the client left first, which cut the attempt.
func commitStream(x *exchange, resp *http.Response, wd *watchdog) bool {
	if !commitAttempt(wd) {
		return false
	}
	firstToken(wd)
	x.firstByte = time.Now()
	x.billable = true
	commitHeaders(x, resp, true)
	return true
}

// drain starts reading a committed attempt on after its client left (drainTimeout bounds
// it); it returns true, the caller's new draining state.
func drain(x *exchange, wd *watchdog) bool {
	wd.clientLeft()
	return true
}

// goneBeforeCommit answers an attempt cut because the client left before its commit
// point: 499 and nothing billed.
func goneBeforeCommit(x *exchange) {
	markLastAttempt(x, classClientGone)
	abandon(x)
}

// markClientGone records a client that went away while its answer was relayed: 499. A
// committed attempt is still billed, from the usage the upstream reported or an estimate.
func markClientGone(x *exchange) {
	x.status = statusClientClosed
	x.errorClass = classClientGone
}

// streamState is where a relayed stream stood when its body ended.
type streamState struct {
	committed bool // past the commit point
	draining  bool // the client left after it
	end       int  // how the last event passed on ends the stream (terminalKind)
	relayed   bool // an error event of the request's own was the commit point
	last      []byte
}

// streamStopped handles the end of an SSE body: rerr is io.EOF for a clean end.
func streamStopped(x *exchange, resp *http.Response, wd *watchdog, rerr error, st streamState,
	pending []byte, scan *usageScanner, ends *chatEnd) *failedAttempt {
	if !st.committed && isClientGone(x) {
		goneBeforeCommit(x)
		return nil
	}
	class := classStreamCut
	if rerr == io.EOF {
		class = classStreamIncomplete
		// A last event without its blank line still counts when it is complete.
		if tail := lastEvent(pending); len(bytes.TrimSpace(pending)) > 0 &&
			(isTerminalEvent(tail) || (ends.chat && isWholeChatEvent(tail))) {
			if f, done := finalEvent(x, resp, wd, &st, tail, pending, scan, ends); done {
				return f
			}
		}
	} else if c := firedClass(wd); c != "" {
		class = c
	}
	if !st.committed {
		if class == classRequestTimeout {
			x.errorClass = class
			timedOut(x)
			return nil
		}
		markLastAttempt(x, class)
		heldUsage(x, scan, pending)
		return &failedAttempt{AccountID: x.grant.AccountID, ErrorClass: class}
	}
	x.usage = scannedUsage(scan)
	x.usageComplete = hasFinalUsage(scan)
	if st.end == endNone && rerr == io.EOF && ends.complete(x.usageComplete) {
		st.end = endComplete // Chat: finish_reason and usage delivered, [DONE] left out
	}
	if ends.errEvent != nil {
		st.end = endError // a Chat error chunk, followed by [DONE]
	}
	if st.end != endNone && !st.draining {
		// Complete: the client got the last event, even if it left right after it (a cut
		// after the last event only dropped a trailing partial line).
		if st.end == endError {
			ev := st.last
			if ends.errEvent != nil {
				ev = ends.errEvent
			}
			inStreamEnded(x, st, ev)
		}
		return nil
	}
	if st.draining || isClientGone(x) {
		markClientGone(x)
		return nil
	}
	x.errorClass = class
	markLastAttempt(x, class)
	msg := wire.MsgStreamCut
	switch class {
	case classStreamIdleTimeout:
		msg = msgStreamIdle
	case classRequestTimeout:
		msg = msgRequestTimout
	}
	writeStreamError(x.rw, x.path, x.info.model, typeUpstream, msg)
	return nil
}

// heldUsage records, on the current attempt, the usage the events held before the commit
// point announced (Anthropic's message_start carries the input tokens): the attempt fails
// over, but its account consumed them (docs/billing.md, "Ledger").
func heldUsage(x *exchange, scan *usageScanner, held []byte) {
	if len(x.attempts) == 0 || len(held) == 0 {
		return
	}
	feedUsage(scan, held)
	x.attempts[len(x.attempts)-1].Usage = rawJSON(scannedUsage(scan))
}

// markLastAttempt records the error class of the failure of the current attempt.
func markLastAttempt(x *exchange, class string) {
	if len(x.attempts) > 0 {
		x.attempts[len(x.attempts)-1].ErrorClass = class
	}
}

// timedOut answers a request whose overall deadline passed: 504 before anything was sent,
// else an in-stream error.
func timedOut(x *exchange) {
	x.errorClass = classRequestTimeout
	if x.written && !x.keepAliveOnly {
		writeStreamError(x.rw, x.path, x.info.model, typeUpstream, msgRequestTimout)
		return
	}
	writeError(x, newClientError(http.StatusGatewayTimeout, typeUpstream, msgRequestTimout))
}
