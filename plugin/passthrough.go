package plugin

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Error passthrough rules (docs/design.md, "POST /internal/v1/upstream-error"): before
// answering with an upstream error — the failover-exhausted mapping, or an error not worth
// failing over that would be relayed as it is — the plugin asks controlsvc whether an admin
// rule rewrites it. controlsvc matches from an in-process cache, so the call is one local
// round trip; any failure of it leaves the default answer unchanged.
const (
	upstreamErrorPath = "/internal/v1/upstream-error"
	// maxErrorHead is how much of an upstream error body rules look at (8 KiB).
	maxErrorHead = 8 << 10
	// passthroughTimeout bounds the rule lookup; a slow controlsvc must not hold an answer
	// that is ready.
	passthroughTimeout = time.Second
)

// peekErrorHead reads the start of resp's error body for a decision and puts it back in
// front of the rest, so that whatever handles resp next (a relay, failure) reads it whole.
func peekErrorHead(resp *http.Response) []byte {
	orig := resp.Body
	head := readErrorHead(orig)
	resp.Body = &prefixedBody{r: io.MultiReader(bytes.NewReader(head), orig), c: orig}
	return head
}

// readErrorHead reads the first maxErrorHead bytes of an upstream error body.
func readErrorHead(body io.Reader) []byte {
	head, _ := io.ReadAll(io.LimitReader(body, maxErrorHead))
	return head
}

// upstreamError asks controlsvc for a rule's rewrite of an upstream error. ok is false when
// no rule matched or controlsvc did not answer usably within timeout.
func upstreamError(c *controlClient, ctx context.Context, timeout time.Duration, ue *upstreamErrorRequest) (int, []byte, bool) {
	body, err := jsonsse.Encode(ue)
	if err != nil {
		return 0, nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	status, _, data, err := post(c, ctx, upstreamErrorPath, body)
	if err != nil || status != http.StatusOK {
		return 0, nil, false
	}
	return decodeUpstreamErrorReply(data)
}

// applyPassthrough writes the rewrite of a matching rule for an upstream error with status
// and the start of its body, and reports whether it did. retryAfter is passed on when the
// rule answers 429. After keep-alives the rewrite becomes an in-stream error with the
// rule's type and message.
func applyPassthrough(x *exchange, status int, head []byte, retryAfter string) bool {
	if x.grant == nil || status < 400 || (x.written && !x.keepAliveOnly) {
		return false
	}
	ue := &upstreamErrorRequest{
		GroupID:  x.grant.GroupID,
		Platform: x.grant.Platform,
		Path:     x.path,
		Status:   status,
		Body:     string(head),
	}
	code, body, ok := upstreamError(x.p.control.client, x.req.Context(), passthroughTimeout, ue)
	if !ok || (x.written && !x.keepAliveOnly) {
		return false
	}
	if x.keepAliveOnly {
		x.errorClass = classUpstreamStatus
		typ, msg := jsonsse.ErrorFields(body, typeUpstream, msgUpstreamFailed)
		failInStream(x, typ, msg)
		return true
	}
	x.written = true
	x.status = code
	x.errorClass = classUpstreamStatus
	defer func() { _ = recover() }()
	h := x.rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set(headerRequestID, x.requestID)
	if code == http.StatusTooManyRequests && retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	x.rw.WriteHeader(code)
	_, _ = x.rw.Write(body)
	return true
}

// relayError answers an upstream error that is not failed over: with a rule's rewrite when
// one matches, else by relaying the upstream response as it is. The start of the body is
// read for the rules and put back in front of the rest for the relay.
func relayError(x *exchange, resp *http.Response, cancel context.CancelFunc) {
	orig := resp.Body
	defer orig.Close()
	head := readErrorHead(orig)
	if applyPassthrough(x, resp.StatusCode, head, "") {
		cancel()
		return
	}
	if converting(x) {
		cancel()
		convertedUpstreamError(x, resp.StatusCode, head) // converted.go
		return
	}
	if x.keepAliveOnly {
		// Keep-alives committed the response: the upstream's error goes in the stream.
		cancel()
		x.errorClass = classUpstreamStatus
		typ, msg := jsonsse.ErrorFields(head, typeUpstream, msgUpstreamFailed)
		failInStream(x, typ, msg)
		return
	}
	if len(head) < maxErrorHead {
		// The whole body is read: the connection can go back to the pool.
		resp.Body = io.NopCloser(bytes.NewReader(head))
	} else {
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(head), orig))
	}
	relay(x, resp, cancel)
}
