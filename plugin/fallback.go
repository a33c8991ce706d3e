package plugin

import (
	"bytes"
	"net/http"
)

// Model fallbacks (docs/design.md, "Model fallbacks"). controlsvc chooses the
// fallback model and says so in the grant: served_model (the client-namespace model served
// instead of the requested one, upstream_model then always set, so bodyFor rewrites the
// body's model and keys its cache by it) and context_fallback (a larger-context model is
// configured). With context_fallback, a 400 that says the prompt is too long is failed over
// with class context_length_exceeded and the account stays eligible: it may serve the
// larger model. The re-admission and the report echo served_model.

// classContextLength: the upstream refused the prompt as longer than the model's context.
const classContextLength = "context_length_exceeded"

// msgContextLength answers a context-length refusal that no fallback model could serve.
const msgContextLength = "The prompt is longer than the model's context length, and no fallback model is available"

// contextLength handles a 400 under a grant with context_fallback: a context-length refusal
// is failed over; any other 400 is relayed (nil).
func contextLength(x *exchange, resp *http.Response, wd *watchdog) *failedAttempt {
	head := peekErrorHead(resp) // passthrough.go
	if !isContextLengthExceeded(head) {
		relayError(x, resp, wd.release)
		return nil
	}
	discardBody(resp, len(head))
	markLastAttempt(x, classContextLength)
	return &failedAttempt{AccountID: x.grant.AccountID, Status: resp.StatusCode, ErrorClass: classContextLength, Body: head}
}

// isContextLengthExceeded recognises the context-length refusals of OpenAI
// ("code": "context_length_exceeded", "maximum context length") and Anthropic
// (invalid_request_error "prompt is too long: … tokens > … maximum").
func isContextLengthExceeded(head []byte) bool {
	b := bytes.ToLower(head)
	return bytes.Contains(b, []byte("context_length_exceeded")) || bytes.Contains(b, []byte("prompt is too long")) ||
		bytes.Contains(b, []byte("maximum context length"))
}

// excludeFailed adds the failed attempt's account to the accounts the re-admission
// excludes, except after a context-length refusal: that account may serve the fallback.
func excludeFailed(x *exchange, failed *failedAttempt) {
	if failed.ErrorClass == classContextLength {
		return
	}
	x.exclude = append(x.exclude, x.grant.AccountID)
}
