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
// (docs/design.md, "Writing plugin code"): each deadline is a time.AfterFunc that records
// which deadline fired and cancels the attempt's context, which ends a RoundTrip waiting
// for headers or a blocked body Read.
type watchdog struct {
	cancel context.CancelFunc

	mu    sync.Mutex
	fired string // the class of the first deadline that fired, "" while none has
	done  bool   // stopped: timers firing late do nothing

	first *time.Timer // time to first token; nil when off
	head  *time.Timer // time to response headers; nil when off
	idle  *time.Timer // stream idle; nil until armed or when off
	total *time.Timer // the request's overall deadline
	idleD time.Duration

	// The client's departure (watchClient). The attempt's context is detached from the
	// client's, so that a committed attempt can be drained: before the commit point a
	// departure cancels the attempt at once, after it the drain timer bounds the rest.
	committed bool
	left      bool          // the client went away
	drainD    time.Duration // drainTimeout; 0: cut at once
	drain     *time.Timer   // armed when the client left after the commit point
	unwatch   func() bool   // stops watching the client's context
}

// newWatchdog arms the first-token timer (when firstToken > 0), the response-header timer
// (when headers > 0) and the overall deadline.
func newWatchdog(cancel context.CancelFunc, firstToken, headers time.Duration, deadline time.Time) *watchdog {
	w := &watchdog{cancel: cancel}
	if firstToken > 0 {
		w.first = time.AfterFunc(firstToken, w.firstTokenPassed)
	}
	if headers > 0 {
		w.head = time.AfterFunc(headers, w.headersLate)
	}
	left := time.Until(deadline)
	if left <= 0 {
		fire(w, classRequestTimeout)
	} else {
		w.total = time.AfterFunc(left, w.requestTimedOut)
	}
	return w
}

// The timers' functions are method values, made on the request goroutine: under Yaegi a
// closure handed to compiled code costs several times a method value (its reflect wrapper
// is built per call; plugin/stagebench.go measures it), and one built in the timer's
// goroutine races (watchClient).
func (w *watchdog) firstTokenPassed() { fire(w, classFirstTokenTimeout) }
func (w *watchdog) headersLate()      { fire(w, classResponseHeaderTimeout) }
func (w *watchdog) requestTimedOut()  { fire(w, classRequestTimeout) }
func (w *watchdog) streamIdled()      { fire(w, classStreamIdleTimeout) }
func (w *watchdog) drainRanOut()      { fire(w, classDrainTimeout) }

func fire(w *watchdog, class string) {
	w.mu.Lock()
	if w.done || w.fired != "" {
		w.mu.Unlock()
		return
	}
	w.fired = class
	w.mu.Unlock()
	w.cancel()
}

// firedClass returns the class of the deadline that ended the attempt, or "".
func firedClass(w *watchdog) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fired
}

// armIdle starts the stream-idle timer (when d > 0); the relay loops reset it per read
// (inline: a method call per read costs µs under Yaegi).
func armIdle(w *watchdog, d time.Duration) {
	if d <= 0 {
		return
	}
	w.idleD = d
	w.idle = time.AfterFunc(d, w.streamIdled)
}

// headersArrived stops the response-header timer: the upstream answered. The transport's
// ResponseHeaderTimeout is only the larger backstop.
func headersArrived(w *watchdog) {
	if w.head != nil {
		w.head.Stop()
	}
}

// firstToken stops the first-token timer: the first semantic output arrived.
func firstToken(w *watchdog) {
	if w.first != nil {
		w.first.Stop()
	}
}

// watchClient ends the attempt when the client's request ends (ctx): at once before the
// commit point, after drain past it. A context.AfterFunc, not a select (docs/design.md,
// "Writing plugin code"). The method value is made here, on the request goroutine: a
// closure written inline would get its reflect wrapper built in the AfterFunc goroutine,
// which races inside Yaegi v0.16.1.
func watchClient(w *watchdog, ctx context.Context, drain time.Duration) {
	w.drainD = drain
	w.unwatch = context.AfterFunc(ctx, w.clientLeft)
}

// clientLeft records that the client went away (its context ended or a write failed).
func (w *watchdog) clientLeft() {
	w.mu.Lock()
	if w.done || w.left {
		w.mu.Unlock()
		return
	}
	w.left = true
	if !w.committed || w.drainD <= 0 {
		w.mu.Unlock()
		w.cancel()
		return
	}
	w.drain = time.AfterFunc(w.drainD, w.drainRanOut)
	w.mu.Unlock()
}

// commit marks the attempt's commit point; false when the client left first, which has
// already cut the attempt.
func commit(w *watchdog) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.left {
		return false
	}
	w.committed = true
	return true
}

// stop disarms every timer; a timer already running its function finds done set.
func stop(w *watchdog) {
	w.mu.Lock()
	w.done = true
	drain := w.drain
	w.mu.Unlock()
	if w.unwatch != nil {
		w.unwatch()
	}
	if drain != nil {
		drain.Stop()
	}
	if w.first != nil {
		w.first.Stop()
	}
	if w.head != nil {
		w.head.Stop()
	}
	if w.idle != nil {
		w.idle.Stop()
	}
	if w.total != nil {
		w.total.Stop()
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
