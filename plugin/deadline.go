package plugin

import (
	"context"
	"sync"
	"time"
)

// Error classes of the deadlines (docs/design.md, "Timeouts"). A timed-out attempt is
// failed over before the commit point, like any other failure, and its account is excluded
// for the request.
const (
	classFirstTokenTimeout = "first_token_timeout"
	classStreamIdleTimeout = "stream_idle_timeout"
	classRequestTimeout    = "request_timeout"
	// classResponseHeaderTimeout: a non-streaming attempt got no response headers within
	// responseHeaderTimeout; like the first-token timeout it fails over and
	// counts towards the (account, model) breaker only.
	classResponseHeaderTimeout = "response_header_timeout"
	// classDrainTimeout: the client left after the commit point and the upstream did not
	// finish within drainTimeout.
	classDrainTimeout = "drain_timeout"
)

// watchdog enforces the deadlines of one upstream attempt without a select statement
// (docs/design.md, "Writing plugin code"). The attempt's context is a chain of contexts,
// one level per way the attempt can be cut: the client leaving before the commit point, the
// overall deadline, the wait for the answer (a plain request's response headers, a
// stream's first token), the stream going idle, the drain after the client left, the
// client no longer reading. Each deadline is a time.AfterFunc of its level's compiled
// cancel function (the overall one a context.WithDeadline): cancelling a level ends a
// RoundTrip waiting for headers or a blocked body Read, and which level is done says which
// deadline cut the attempt (firedClass).
//
// Compiled functions, not plugin functions: under Yaegi a function value of the plugin's
// own handed to compiled code (a method value, a closure) keeps alive the frame it was made
// in and, through each frame's link to its caller, every frame of the call path at that
// moment, for as long as the timer or context holds it (docs/yaegi.md). Made deep in an
// attempt and held for a stream's life, that is kilobytes per open stream. The one plugin
// callback left, the client leaving after the commit point (watchDrain), is registered by
// the relay that runs from the top of the call path (relayCommitted).
type watchdog struct {
	mu    sync.Mutex
	fired string // the class that ended the attempt, kept by stopWatchdog; "" before
	done  bool   // stopped

	// The levels, outermost first; each one's context is the parent of the next, and the
	// last is the attempt's. The client's level is the outermost, so that its context is
	// done only when the client left before the commit point (commitAttempt).
	client, total, wait, idleC, drainC, stall context.Context
	cancels                                   [6]context.CancelFunc

	firstT *time.Timer // time to first token; nil when off
	headT  *time.Timer // time to response headers; nil when off
	idle   *time.Timer // stream idle; nil until armed or when off
	idleD  time.Duration

	// The client's departure. The attempt's context is detached from the client's, so that
	// a committed attempt can be drained: before the commit point a departure cancels the
	// attempt at once (a compiled context.AfterFunc), after it the drain timer bounds the
	// rest (watchDrain).
	clientCtx context.Context
	committed bool
	left      bool          // the client went away after the commit point
	drainD    time.Duration // drainTimeout; 0: cut at once
	drain     *time.Timer   // armed when the client left after the commit point
	unwatch   func() bool   // stops watching the client's context
}

// Indexes of the levels in cancels.
const (
	levelClient = iota
	levelTotal
	levelWait // the first-token timer of a stream or the header timer of a plain request: never both
	levelIdle
	levelDrain
	levelStall
)

// newWatchdog returns the attempt's context, derived from parent, and its watchdog, with the
// first-token timer (when firstToken > 0; a stream), else the response-header timer (when
// headers > 0; a plain request), and the overall deadline armed.
func newWatchdog(parent context.Context, firstToken, headers time.Duration, deadline time.Time) (context.Context, *watchdog) {
	w := &watchdog{}
	w.client, w.cancels[levelClient] = context.WithCancel(parent)
	w.total, w.cancels[levelTotal] = context.WithDeadline(w.client, deadline)
	w.wait, w.cancels[levelWait] = context.WithCancel(w.total)
	w.idleC, w.cancels[levelIdle] = context.WithCancel(w.wait)
	w.drainC, w.cancels[levelDrain] = context.WithCancel(w.idleC)
	w.stall, w.cancels[levelStall] = context.WithCancel(w.drainC)
	if firstToken > 0 {
		w.firstT = time.AfterFunc(firstToken, w.cancels[levelWait])
	} else if headers > 0 {
		w.headT = time.AfterFunc(headers, w.cancels[levelWait])
	}
	return w.stall, w
}

// classOf is the class of the outermost level that is done, "" when none is or only the
// client's departure before the commit point cut the attempt (the exchange sees that
// itself: isClientGone).
func classOf(w *watchdog) string {
	if w.stall.Err() == nil {
		return "" // the innermost level: done whenever any level is (one call on the common path)
	}
	switch {
	case w.client.Err() != nil:
		return ""
	case w.total.Err() != nil:
		return classRequestTimeout
	case w.wait.Err() != nil && w.firstT != nil:
		return classFirstTokenTimeout
	case w.wait.Err() != nil:
		return classResponseHeaderTimeout
	case w.idleC.Err() != nil:
		return classStreamIdleTimeout
	case w.drainC.Err() != nil:
		return classDrainTimeout
	}
	return classClientGone // the stall level alone
}

// firedClass returns the class of the deadline that ended the attempt, or "".
func firedClass(w *watchdog) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return w.fired
	}
	return classOf(w)
}

// cancelStall is what a stall of the client's writes ends (stall.go): the attempt, as
// client_gone.
func cancelStall(w *watchdog) func() { return w.cancels[levelStall] }

// armIdle starts the stream-idle timer (when d > 0); the relay loops reset it per read
// (inline: a call per read costs µs under Yaegi).
func armIdle(w *watchdog, d time.Duration) {
	if d <= 0 {
		return
	}
	w.idleD = d
	w.idle = time.AfterFunc(d, w.cancels[levelIdle])
}

// headersArrived stops the response-header timer: the upstream answered. The transport's
// ResponseHeaderTimeout is only the larger backstop.
func headersArrived(w *watchdog) {
	if w.headT != nil {
		w.headT.Stop()
	}
}

// firstToken stops the first-token timer: the first semantic output arrived.
func firstToken(w *watchdog) {
	if w.firstT != nil {
		w.firstT.Stop()
	}
}

// watchClient ends the attempt at once when the client's request (ctx) ends before the
// commit point: a context.AfterFunc of the client level's compiled cancel, not a select
// (docs/design.md, "Writing plugin code"). drain is how long a committed attempt is read on
// after the client left (watchDrain).
func watchClient(w *watchdog, ctx context.Context, drain time.Duration) {
	w.clientCtx = ctx
	w.drainD = drain
	w.unwatch = context.AfterFunc(ctx, w.cancels[levelClient])
}

// watchDrain watches the client's request after the commit point: when it ends, the attempt
// is drained for drainTimeout (clientLeft). Called by the relays after commit; the method
// value is made here, in a frame of the relay's call path (see watchdog).
func watchDrain(w *watchdog) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.left || w.unwatch != nil {
		return
	}
	w.unwatch = context.AfterFunc(w.clientCtx, w.clientLeft)
}

// clientLeft records that the client went away after the commit point (its context ended
// or a write failed): the drain timer starts, or the attempt ends at once without one.
func (w *watchdog) clientLeft() {
	w.mu.Lock()
	if w.done || w.left {
		w.mu.Unlock()
		return
	}
	w.left = true
	if !w.committed || w.drainD <= 0 {
		w.mu.Unlock()
		w.cancels[levelClient]()
		return
	}
	w.drain = time.AfterFunc(w.drainD, w.cancels[levelDrain])
	w.mu.Unlock()
}

// commitAttempt marks the attempt's commit point and stops the watch of the client that cuts it
// at once; false when the client left first, which has already cut the attempt.
func commitAttempt(w *watchdog) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unwatch != nil && !w.committed {
		if !w.unwatch() {
			return false // its cancel ran: the client left
		}
		w.unwatch = nil
	}
	if w.client.Err() != nil {
		return false
	}
	w.committed = true
	return true
}

// stopWatchdog keeps the class that ended the attempt and disarms every timer; a timer that fires
// late only cancels a context of an attempt that is over.
func stopWatchdog(w *watchdog) {
	w.mu.Lock()
	if !w.done {
		w.fired = classOf(w)
		w.done = true
	}
	drain, unwatch := w.drain, w.unwatch
	w.mu.Unlock()
	if unwatch != nil {
		unwatch()
	}
	if drain != nil {
		drain.Stop()
	}
	if w.firstT != nil {
		w.firstT.Stop()
	}
	if w.headT != nil {
		w.headT.Stop()
	}
	if w.idle != nil {
		w.idle.Stop()
	}
}

// durationMs converts an optional per-group override in milliseconds: nil keeps def, 0 or
// less turns the deadline off.
func durationMs(ms *int64, def time.Duration) time.Duration {
	if ms == nil {
		return def
	}
	if *ms <= 0 {
		return 0
	}
	return time.Duration(*ms) * time.Millisecond
}
