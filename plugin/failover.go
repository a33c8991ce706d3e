package plugin

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxDrain bounds how much of a failed attempt's body is read so that its connection can
// be reused; beyond that the connection is simply closed.
const maxDrain = 64 << 10

// maxRetryAfter is the largest Retry-After (seconds) passed on to a client: 7 days.
const maxRetryAfter = 7 * 24 * 3600

// isFailoverStatus reports whether an upstream status means "try another account"
// (issue 2 §4; sub2api-behaviour.md §5.1).
func isFailoverStatus(status int) bool {
	switch status {
	case 401, 402, 403, 429, 529:
		return true
	}
	return status >= 500
}

// admit asks controlsvc for an account, first without and then with the failed attempt.
// It returns false when the exchange has been answered instead.
func (x *exchange) admit(failed *failedAttempt) bool {
	ar := &admitRequest{
		RequestID: x.requestID,
		APIKey:    x.apiKey,
		Path:      x.path,
		Model:     x.info.model,
		Stream:    x.info.stream,
		Exclude:   x.exclude,
		Failed:    failed,
	}
	if x.grant != nil {
		ar.GrantID = x.grant.GrantID
	}
	g, rej, err := x.p.control.client.admit(x.req.Context(), x.p.admitTimeout, ar)
	if g != nil {
		// Take the grant before anything else: even if the client is gone now, the grant
		// must be reported so that its slots are released.
		if x.grant != nil && x.grant.GrantID != g.GrantID {
			// Re-admission extends the grant; should controlsvc ever answer with another
			// id, stop renewing the old one rather than renew it forever.
			x.p.control.leases.unregister(x.grant.GrantID)
		}
		x.grant = g
		x.p.control.leases.register(lease{GrantID: g.GrantID, UserID: g.UserID, AccountID: g.AccountID})
	}
	if x.clientGone() {
		x.abandon()
		return false
	}
	if err != nil {
		x.errorClass = classControlUnavailable
		x.writeError(newClientError(http.StatusServiceUnavailable, typeAPI, msgUnavailable))
		return false
	}
	if rej != nil {
		if failed != nil && rej.reason == rejectNoAccount {
			x.exhaust(failed)
			return false
		}
		x.errorClass = classRejected
		x.writeRejection(rej)
		return false
	}
	return true
}

// forward runs the attempt loop: an attempt that fails with a failover status or a transport
// error, before anything was written, is reported at re-admission and another account is
// tried, at most maxSwitches times.
func (x *exchange) forward() {
	switches := 0
	for {
		resp, cancel, err := x.attempt()
		if x.clientGone() {
			if resp != nil {
				resp.Body.Close()
			}
			cancel()
			x.attempts[len(x.attempts)-1].ErrorClass = classClientGone
			x.abandon()
			return
		}
		if err == nil && !isFailoverStatus(resp.StatusCode) {
			if resp.StatusCode >= 400 {
				x.relayError(resp, cancel) // passthrough.go
				return
			}
			x.relay(resp, cancel)
			return
		}
		failed := x.failure(resp, err)
		cancel()
		if switches >= x.p.maxSwitches {
			x.exhaust(failed)
			return
		}
		switches++
		x.exclude = append(x.exclude, x.grant.AccountID)
		if !x.admit(failed) {
			return
		}
	}
}

// attempt sends the request to the current grant's account and records the attempt. The
// returned cancel ends the upstream request; the caller calls it when done with resp.
func (x *exchange) attempt() (*http.Response, context.CancelFunc, error) {
	g := x.grant
	ctx, cancel := context.WithCancel(x.req.Context())
	began := time.Now()
	out, err := buildUpstreamRequest(ctx, x.req, x.path, g, x.bodyFor(g))
	var resp *http.Response
	if err == nil {
		resp, err = x.p.transport.RoundTrip(out)
	}
	rec := attemptReport{AccountID: g.AccountID, DurationMs: millisSince(began)}
	if err != nil {
		rec.ErrorClass = classTransport
	} else {
		rec.Status = resp.StatusCode
		if resp.StatusCode >= 400 {
			rec.ErrorClass = classUpstreamStatus
		}
	}
	x.attempts = append(x.attempts, rec)
	return resp, cancel, err
}

// failure describes a failed attempt for controlsvc and releases its response.
func (x *exchange) failure(resp *http.Response, err error) *failedAttempt {
	f := &failedAttempt{AccountID: x.grant.AccountID, ErrorClass: classTransport}
	if err != nil {
		return f
	}
	f.Status = resp.StatusCode
	f.ErrorClass = classUpstreamStatus
	f.RetryAfter = resp.Header.Get("Retry-After")
	f.RatelimitReset = resp.Header.Get("X-Ratelimit-Reset-Requests")
	if f.RatelimitReset == "" {
		f.RatelimitReset = resp.Header.Get("X-Ratelimit-Reset-Tokens")
	}
	f.Body = readErrorHead(resp.Body) // kept for the passthrough rules of exhaust
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
	return f
}

// exhaust answers with the failover-exhausted mapping of the last failure.
func (x *exchange) exhaust(last *failedAttempt) {
	x.errorClass = last.ErrorClass
	if x.applyPassthrough(last.Status, last.Body, safeRetryAfter(last.RetryAfter)) {
		return
	}
	x.writeError(exhaustedError(last))
}

// exhaustedError maps the last upstream failure to the client's answer when no account is
// left (sub2api-behaviour.md §5.6). A transport error has status 0 and maps to the default.
func exhaustedError(last *failedAttempt) *clientError {
	switch last.Status {
	case 401:
		return newClientError(http.StatusBadGateway, typeUpstream, "Upstream authentication failed, please contact administrator")
	case 403:
		return newClientError(http.StatusBadGateway, typeUpstream, "Upstream access forbidden, please contact administrator")
	case 429:
		e := newClientError(http.StatusTooManyRequests, typeRateLimit, "Upstream rate limit exceeded, please retry later")
		e.retryAfter = safeRetryAfter(last.RetryAfter)
		return e
	case 529:
		return newClientError(http.StatusServiceUnavailable, typeUpstream, "Upstream service overloaded, please retry later")
	case 500, 502, 503, 504:
		return newClientError(http.StatusBadGateway, typeUpstream, "Upstream service temporarily unavailable")
	}
	return newClientError(http.StatusBadGateway, typeUpstream, "Upstream request failed")
}

// safeRetryAfter passes on a Retry-After given in seconds, up to 7 days; anything else
// (HTTP dates included) is dropped.
func safeRetryAfter(v string) string {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxRetryAfter {
		return ""
	}
	return strconv.Itoa(n)
}
