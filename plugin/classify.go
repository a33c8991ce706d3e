package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error classes of failed attempts that controlsvc reads as the account's own faults
// (docs/design.md, "Health model").
const (
	// classDial: the TCP connect or TLS handshake failed, nothing was sent; controlsvc
	// pauses the account with a short, growing back-off. A failure after the request went
	// out stays classTransport, which only counts towards the (account, model) breaker.
	classDial = "dial"
	// classQuota: the upstream says the account is out of credit; controlsvc pauses it for
	// an hour with pause_reason insufficient_quota.
	classQuota = "quota"
)

// errDialFailed wraps every error of the guarded dialer (dialguard.go). The wrapping is
// compiled (fmt's %w), so errors.Is sees it under Yaegi too, through http.Transport's own
// wrapping.
var errDialFailed = errors.New("dial failed")

func dialFailed(err error) error {
	return fmt.Errorf("%w: %w", errDialFailed, err)
}

// tlsHandshakeMarks are in the text of the errors http.Transport returns when the TLS
// handshake fails (crypto/tls alerts and record errors "tls: …", certificate checks
// "x509: …", and its own "net/http: TLS handshake timeout"). They have no exported type a
// plugin can test for under Yaegi, so the text decides.
var tlsHandshakeMarks = []string{"tls: ", "x509: ", "TLS handshake timeout"}

// isDialFailure reports whether a RoundTrip error happened before the request was sent:
// the connection or its TLS handshake failed.
func isDialFailure(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false // the attempt was given up (a lost hedge, a client gone): not the account's fault
	}
	if errors.Is(err, errDialFailed) {
		return true
	}
	msg := err.Error()
	for i := 0; i < len(tlsHandshakeMarks); i++ {
		if strings.Contains(msg, tlsHandshakeMarks[i]) {
			return true
		}
	}
	return false
}

// quotaMarks, in a lower-cased error body head, say the account is out of credit:
// OpenAI's insufficient_quota (https://platform.openai.com/docs/guides/error-codes),
// Anthropic's billing_error and its "credit balance is too low" message
// (https://docs.anthropic.com/en/api/errors).
var quotaMarks = [][]byte{[]byte("insufficient_quota"), []byte("billing_error"), []byte("credit balance is too low")}

// quotaFault reports whether an upstream error answer says the account is out of credit:
// a 429, 402, 400 or 403 whose body head names it.
func quotaFault(status int, head []byte) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusPaymentRequired, http.StatusBadRequest, http.StatusForbidden:
	default:
		return false
	}
	lower := bytes.ToLower(head)
	for i := 0; i < len(quotaMarks); i++ {
		if bytes.Contains(lower, quotaMarks[i]) {
			return true
		}
	}
	return false
}

// classifyStatusFailure sets a failed answer's class from its body head: quota when the
// account is out of credit. It runs on every failover status (failure).
func classifyStatusFailure(x *exchange, f *failedAttempt) {
	if quotaFault(f.Status, f.Body) {
		f.ErrorClass = classQuota
		markLastAttempt(x, classQuota)
	}
}

// clientErrorFailure looks at a 4xx answer that is otherwise relayed to the client: one
// that says the account is out of credit (a 400 or 403 quota body) is failed over instead
// (nil: it was relayed).
func clientErrorFailure(x *exchange, resp *http.Response, wd *watchdog) *failedAttempt {
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
		relayError(x, resp, wd.release) // passthrough.go
		return nil
	}
	if !quotaFault(resp.StatusCode, peekErrorHead(resp)) {
		relayError(x, resp, wd.release)
		return nil
	}
	return failure(x, resp, nil, wd) // classified quota there
}
