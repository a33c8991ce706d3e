package plugin

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxDrain bounds how much of a failed attempt's body is read so that its connection can
// be reused; beyond that the connection is simply closed.
const maxDrain = 64 << 10

// maxRetryAfter is the largest Retry-After (seconds) passed on to a client: 7 days.
const maxRetryAfter = 7 * 24 * 3600

// isFailoverStatus reports whether an upstream status means "try another account"
// (docs/design.md, "Streams: commit point, endings, in-stream errors").
func isFailoverStatus(status int) bool {
	switch status {
	case 401, 402, 403, 429, 529:
		return true
	}
	return status >= 500
}

// admit asks controlsvc for an account, first without and then with the failed attempt.
// It returns false when the exchange has been answered instead.
func admit(x *exchange, failed *failedAttempt) bool {
	ar := buildAdmitRequest(x, failed)
	began := time.Now()
	g, rej, err := admitWithKeepAlive(x, ar) // keepalive.go
	countAdmission(x, time.Since(began))
	return admitted(x, g, rej, err, failed)
}

// buildAdmitRequest is the admit call of the exchange, after failed when it is a re-admission.
func buildAdmitRequest(x *exchange, failed *failedAttempt) *admitRequest {
	ar := &admitRequest{
		RequestID:     x.requestID,
		APIKey:        x.apiKey,
		Path:          x.path,
		Model:         x.info.model,
		Stream:        x.info.stream,
		Exclude:       x.exclude,
		Failed:        failed,
		MaxWaitMs:     int64(x.p.maxWait / time.Millisecond),
		SessionHash:   x.sessionHash,
		SessionSource: x.sessionSource,

		InputBytes:      x.inputBytes,
		MaxOutputTokens: x.info.maxOutputTokens,
	}
	if x.grant != nil {
		ar.GrantID = x.grant.GrantID
		ar.ServedModel = x.grant.ServedModel // the next fallback counts from it
	}
	return ar
}

// admitted takes an admit call's outcome; false when the exchange has been answered instead.
func admitted(x *exchange, g *grant, rej *rejection, err error, failed *failedAttempt) bool {
	if g != nil {
		// Take the grant before anything else: even if the client is gone now, the grant
		// must be reported so that its slots are released.
		// Re-admission extends the grant; should controlsvc ever answer with another id,
		// holdLease stops renewing the old one rather than renew it forever.
		x.grant = g
		holdLease(x, g) // stall.go: not when the client stopped reading
	}
	if isClientGone(x) {
		abandon(x)
		return false
	}
	if err != nil {
		x.errorClass = classControlUnavailable
		writeError(x, newClientError(http.StatusServiceUnavailable, typeAPI, msgUnavailable))
		return false
	}
	if rej != nil {
		if failed != nil && rej.reason == rejectNoAccount {
			exhaust(x, failed)
			return false
		}
		x.errorClass = classRejected
		respondRejection(x, rej)
		return false
	}
	return true
}

// forwardExchange runs the attempt loop: an attempt that fails before the commit point — a
// failover status, a transport error, a deadline, a stream that breaks before its first
// semantic output — is retried once on the same account when the upstream asked for a short
// wait (retry.go), else reported at re-admission and another account is tried, at most
// maxSwitches times. The request's overall deadline (requestTimeout) bounds every attempt.
func forwardExchange(x *exchange) {
	switches := 0
	for {
		if converting(x) && !prepareConverted(x) {
			return
		}
		resp, wd, err := send(x) // attempt.go
		if isClientGone(x) {
			if resp != nil {
				resp.Body.Close()
			}
			wd.release()
			markLastAttempt(x, classClientGone)
			abandon(x)
			return
		}
		failed := respond(x, resp, wd, err)
		if x.relay == nil {
			wd.release() // else the committed stream's relay releases it (relayCommitted)
		}
		if failed == nil {
			return // answered
		}
		if failed.ErrorClass == classRequestTimeout {
			timedOut(x)
			return
		}
		if wait, ok := sameAccountWait(x, failed); ok { // retry.go
			if !retrySameAccount(x, wait) {
				return
			}
			continue
		}
		if switches >= x.p.maxSwitches {
			exhaust(x, failed)
			return
		}
		switches++
		excludeFailed(x, failed) // fallback.go
		if !admit(x, failed) {
			return
		}
	}
}

// respond handles one attempt's outcome: it relays an answer to the client (nil) or
// describes a failure to fail over from.
func respond(x *exchange, resp *http.Response, wd *watchdog, err error) *failedAttempt {
	switch {
	case err != nil:
		return failure(x, nil, err, wd)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return authFailure(x, resp, wd) // credential.go
	case isFailoverStatus(resp.StatusCode):
		return failure(x, resp, nil, wd)
	case resp.StatusCode == http.StatusNotFound:
		return notFound(x, resp, wd)
	case resp.StatusCode == http.StatusBadRequest && x.grant.ContextFallback:
		return contextLength(x, resp, wd) // fallback.go
	case resp.StatusCode >= 400:
		return clientErrorFailure(x, resp, wd) // classify.go: a quota 400 fails over, the rest is relayed
	case converting(x):
		return relayConverted(x, resp, wd) // converted.go
	case isEventStream(resp.Header.Get("Content-Type")):
		return relayStream(x, resp, wd)
	}
	relayWith(x, resp, wd.release, wd)
	return nil
}

// failure describes a failed attempt for controlsvc and releases its response. An attempt
// that a deadline ended has the deadline's class, not "transport": a silent account is
// excluded for the request but not paused.
func failure(x *exchange, resp *http.Response, err error, wd *watchdog) *failedAttempt {
	f := &failedAttempt{AccountID: x.grant.AccountID, ErrorClass: classTransport}
	if err != nil {
		f.ErrorClass = transportClass(err)
		if c := firedClass(wd); c != "" {
			f.ErrorClass = c
		}
		return f
	}
	f.Status = resp.StatusCode
	f.ErrorClass = classUpstreamStatus
	f.RetryAfter = resp.Header.Get("Retry-After")
	f.RatelimitReset = ratelimitReset(resp.Header)
	if n := len(x.attempts); n > 0 {
		// The report carries them too: a 429 on the last attempt marks the account from it.
		x.attempts[n-1].RetryAfter = f.RetryAfter
		x.attempts[n-1].RatelimitReset = f.RatelimitReset
	}
	f.Body = readErrorHead(resp.Body) // kept for the passthrough rules of exhaust
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
	classifyStatusFailure(x, f) // classify.go
	return f
}

// resetHeaders announce when a rate limit resets: OpenAI's durations ("6s", "1m30s") and
// Anthropic's RFC 3339 times. Every present one is passed on in ratelimit_reset, separated
// by ", ": the response does not say which limit was hit, so controlsvc rests the account
// until the latest.
var resetHeaders = []string{
	"X-Ratelimit-Reset-Requests",
	"X-Ratelimit-Reset-Tokens",
	"Anthropic-Ratelimit-Unified-Reset",
	"Anthropic-Ratelimit-Requests-Reset",
	"Anthropic-Ratelimit-Tokens-Reset",
	"Anthropic-Ratelimit-Input-Tokens-Reset",
	"Anthropic-Ratelimit-Output-Tokens-Reset",
}

func ratelimitReset(h http.Header) string {
	out := ""
	for i := 0; i < len(resetHeaders); i++ {
		v := strings.TrimSpace(h.Get(resetHeaders[i]))
		if v == "" {
			continue
		}
		if out != "" {
			out += ", "
		}
		out += v
	}
	return out
}

// classModelNotFound: the upstream said it does not know the model (an upstream 404).
const classModelNotFound = "model_not_found"

// notFound handles an upstream 404: a "model not found" answer is failed over (the account
// is blocked for the model by controlsvc), any other 404 is relayed (nil).
func notFound(x *exchange, resp *http.Response, wd *watchdog) *failedAttempt {
	head := peekErrorHead(resp) // passthrough.go
	if isModelNotFound(head) {
		discardBody(resp, len(head))
		markLastAttempt(x, classModelNotFound)
		return &failedAttempt{AccountID: x.grant.AccountID, Status: resp.StatusCode,
			ErrorClass: classModelNotFound, Body: head}
	}
	relayError(x, resp, wd.release)
	return nil
}

// isModelNotFound recognises the model-not-found errors of OpenAI ("code":"model_not_found",
// "The model `x` does not exist") and Anthropic (not_found_error, "model: x").
func isModelNotFound(head []byte) bool {
	b := bytes.ToLower(head)
	if bytes.Contains(b, []byte("model_not_found")) {
		return true
	}
	if !bytes.Contains(b, []byte("model")) {
		return false
	}
	return bytes.Contains(b, []byte("does not exist")) || bytes.Contains(b, []byte("not_found_error")) ||
		bytes.Contains(b, []byte("not found"))
}

// discardBody drains a failed attempt's body, whose first peeked bytes were put back, up to
// maxDrain beyond them (so that its connection can be reused), and closes it.
func discardBody(resp *http.Response, peeked int) {
	_, _ = io.CopyN(io.Discard, resp.Body, int64(peeked)+maxDrain)
	resp.Body.Close()
}

// prefixedBody is a response body whose start was read and put back.
type prefixedBody struct {
	r io.Reader
	c io.Closer
}

func (p *prefixedBody) Read(b []byte) (int, error) { return p.r.Read(b) }
func (p *prefixedBody) Close() error               { return p.c.Close() }

// exhaust answers with the failover-exhausted mapping of the last failure.
func exhaust(x *exchange, last *failedAttempt) {
	x.errorClass = last.ErrorClass
	// After keep-alives committed the response, both answers go in the stream.
	if applyPassthrough(x, last.Status, last.Body, safeRetryAfter(last.RetryAfter)) {
		return
	}
	e := exhaustedError(last)
	switch {
	case converting(x):
		e = convertedExhausted(last)
	case x.path == pathMessages && last.Status == statusOverloaded:
		e.typ = typeOverloaded // Anthropic's type for an overloaded upstream (errors.go maps the rest)
	}
	writeError(x, e)
}

// exhaustedError maps the last upstream failure to the client's answer when no account is
// left (the failover-exhausted mapping, docs/design.md "POST /internal/v1/admit"). A
// transport error has status 0 and maps to the default.
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
	switch last.ErrorClass {
	case classFirstTokenTimeout, classStreamIdleTimeout, classResponseHeaderTimeout:
		return newClientError(http.StatusGatewayTimeout, typeUpstream, "Upstream timed out, please retry later")
	case classModelNotFound:
		return newClientError(http.StatusNotFound, typeInvalidRequest, "The model does not exist or you do not have access to it")
	case classContextLength: // no fallback model could be served (fallback.go)
		return newClientError(http.StatusBadRequest, typeInvalidRequest, msgContextLength)
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
