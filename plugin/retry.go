package plugin

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Same-account retry (docs/design.md, "Same-account retry"). Moving to another account loses
// the provider's prompt cache, so a failure that says "try again shortly" is retried once on
// the same account, on the same grant and without an admit call, before failing over:
//   - a 429 or 503 whose Retry-After is at most sameAccountRetryMax, after waiting it out;
//   - a 500, 502 or 503 with no Retry-After (a 503 with one follows the rule above), at once.
//
// Only an HTTP error status of an attempt that sent the client nothing qualifies (class
// upstream_status): a 429 that is quota has its own class and is never retried, nor are
// transport errors and timeouts. At most one such retry per account per request, and none
// whose wait would pass the request's overall deadline. The failed attempt stays in the
// ledger with retried_same_account set.

// sameAccountWait says whether failed may be retried on its account, and after how long.
func sameAccountWait(x *exchange, failed *failedAttempt) (time.Duration, bool) {
	if x.p.retryMax <= 0 || failed.ErrorClass != classUpstreamStatus || retriedOn(x, failed.AccountID) {
		return 0, false
	}
	wait, asked := retryAfterDelay(failed.RetryAfter, time.Now())
	switch failed.Status {
	case http.StatusTooManyRequests:
		if !asked {
			return 0, false // a rate limit without a short wait named: another account
		}
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable:
	default:
		return 0, false
	}
	if wait > x.p.retryMax || !time.Now().Add(wait).Before(x.start.Add(x.p.requestLimit)) {
		return 0, false
	}
	return wait, true
}

// retriedOn reports whether the request already retried on account id.
func retriedOn(x *exchange, id int64) bool {
	for i := 0; i < len(x.sameRetried); i++ {
		if x.sameRetried[i] == id {
			return true
		}
	}
	return false
}

// retrySameAccount waits out wait and marks the failed attempt as retried on its account.
// False when the client left during the wait: the exchange is then answered.
func retrySameAccount(x *exchange, wait time.Duration) bool {
	x.sameRetried = append(x.sameRetried, x.grant.AccountID)
	if !pause(x, wait) {
		abandon(x)
		return false
	}
	if n := len(x.attempts); n > 0 {
		x.attempts[n-1].RetriedSameAccount = true
	}
	return true
}

// pause waits d, or less when the client leaves or stops reading, and reports whether the
// client is still there. A streaming client gets keep-alives meanwhile (keepalive.go); the
// first only goes out after pingInterval, so a short wait sends none. No select: a wakeup
// raised by the timer, the client's context or the stall watchdog (wakeup.go).
func pause(x *exchange, d time.Duration) bool {
	if d > 0 && !isClientGone(x) {
		w := newWakeup()
		stop := context.AfterFunc(x.req.Context(), w.raise) // a method value made here
		onStall(x.stall, w.raise)
		k := startPings(x)
		w.wait(d)
		stop()
		stopPings(x, k)
	}
	return !isClientGone(x)
}

// retryAfterDelay reads a Retry-After value: delay-seconds (fractions accepted, as some
// providers send them) or an HTTP date. asked is false when there is none or it cannot be
// read.
func retryAfterDelay(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if !(f >= 0 && f <= maxRetryAfter) { // NaN too
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}
