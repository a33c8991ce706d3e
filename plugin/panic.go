package plugin

import "net/http"

// A panic in the request path is recovered in exchange.finish. Before anything was written
// the client gets a 500; after the commit point the status line is out, and the stream must
// still end in the path's terminal error event (streamErrorFrame) — but an error frame must
// never land inside a half-written event, where the client's SSE parser would glue it to
// the partial event's data.
//
// The rule: the relays pass on whole events (up to the last blank line), except an event
// longer than jsonsse.MaxCarry, which goes out as it comes, and plain (non-SSE) bodies,
// which are copied chunk by chunk; they set midEvent when what the client got may end
// inside an event. A panic inside a client write leaves unknown how much of it went out:
// it counts as mid-event.
//   - After keep-alives only, or at an event boundary of an event stream: the terminal
//     error event is written.
//   - Mid-event, or in a plain body: the connection is cut (panic(http.ErrAbortHandler),
//     after the report): the client sees a broken stream, never a clean end. Ending the
//     partial event with a blank line first is not safe: it would dispatch the truncated
//     event, whose data (a JSON document cut short, or one line of several) the client
//     parses as a complete one.
//   - A client that is gone, or stopped reading (stall.go), gets nothing.
//
// Under Yaegi an interpreted panic(v) panics with a reflect.Value holding v, so net/http and
// Traefik's recovery middleware do not recognise http.ErrAbortHandler: they log the panic
// with its stack and still abort the response. That is right for a panic, which is a bug, but
// it is why a stalled client is not cut this way: it simply gets no more bytes.

// endAfterPanic answers after a recovered panic and reports whether the connection must be
// cut once the report is out.
func endAfterPanic(x *exchange) bool {
	x.errorClass = classInternal
	switch {
	case !x.written:
		writeError(x, newClientError(http.StatusInternalServerError, typeAPI, msgInternal))
		return false
	case isClientGone(x):
		return false
	case x.keepAliveOnly:
		failInStream(x, typeAPI, msgInternal)
		return false
	case isEventStream(x.rw.Header().Get("Content-Type")) && !x.midEvent && !x.stall.writing:
		writeStreamError(x.rw, x.path, x.info.model, typeAPI, msgInternal)
		return false
	}
	return true
}

// cutIf ends the exchange's handling of the connection: it stops the stall watchdog and,
// when cut is set, aborts the response the way net/http (and Traefik's recovery
// middleware) expect.
func cutIf(x *exchange, cut bool) {
	x.stall.close()
	if cut {
		panic(http.ErrAbortHandler)
	}
}
