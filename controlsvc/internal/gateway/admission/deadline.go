package admission

import (
	"net/http"
	"time"
)

// The caller's deadline (deadline_ms, docs/design.md "POST /internal/v1/admit") is split so
// that the answer is written before it: the waits end WaitMargin before it, leaving time for
// billing after a wait; the gateway's handler ends all work a smaller margin before it,
// leaving time to write.
const WaitMargin = 500 * time.Millisecond

// Reasons of admission's own bounds.
const (
	ReasonDeadline     = "deadline"
	ReasonShuttingDown = "shutting_down"
)

var (
	// RejectDeadline answers a call whose deadline passed (or was too close to do anything).
	// Its caller has normally given up already; it exists so that no grant is ever written
	// late.
	RejectDeadline = &Rejection{status: http.StatusGatewayTimeout, reason: ReasonDeadline, errType: "api_error",
		message: "Admission deadline passed, please retry"}

	// RejectShuttingDown answers waiting and new admit calls of a controlsvc that is
	// stopping (SIGTERM): retryable at once, on another instance (the plugin's controlURLs).
	RejectShuttingDown = &Rejection{status: http.StatusServiceUnavailable, reason: ReasonShuttingDown,
		errType: "api_error", message: "Service is restarting, please retry", retryAfter: "1"}
)

// CallDeadline is the time by which the caller stops waiting for the answer; zero: none.
func (req *Request) CallDeadline() time.Time {
	if req.DeadlineMs <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(req.DeadlineMs)
}

// waitBudget is how long the call may spend in wait queues: max_wait_ms, capped by the
// deadline less WaitMargin; ok false when neither bounds it (only the queues' timeouts do).
func (req *Request) waitBudget(now time.Time) (time.Duration, bool) {
	budget, ok := time.Duration(0), false
	if req.MaxWaitMs != nil {
		budget, ok = time.Duration(*req.MaxWaitMs)*time.Millisecond, true
	}
	if dl := req.CallDeadline(); !dl.IsZero() {
		if left := dl.Sub(now) - WaitMargin; !ok || left < budget {
			budget, ok = left, true
		}
	}
	return budget, ok
}
