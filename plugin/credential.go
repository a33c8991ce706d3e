package plugin

import (
	"net/http"
	"strings"
)

// classCredential: the upstream refused the account's credential itself (401/403 that the
// provider attributes to the key, credentialFault). It is the only class on which
// controlsvc pauses an account for an auth error; any other 401/403 is relayed to the
// client with the upstream's status and marks nothing, because a client can cause it
// (docs/design.md, "Account health").
const classCredential = "credential"

// credentialFault reports whether an upstream 401/403 body blames the account's credential,
// as opposed to something in the request a client controls (a beta, a model, an image URL,
// an organization header). It decides conservatively: only these answers count —
//   - OpenAI 401 with code invalid_api_key or account_deactivated, or the message
//     "Incorrect API key provided…" (https://platform.openai.com/docs/guides/error-codes);
//   - Anthropic 401 authentication_error, unless its message names a beta or a scope, which
//     a client's anthropic-beta can bring about (https://docs.anthropic.com/en/api/errors);
//   - Anthropic 403 permission_error only when its message says the key or organization is
//     disabled; a permission_error about a resource (a model, a feature) is the request's.
//
// OpenAI's 403s (a model the project may not use, an unsupported region) never count.
func credentialFault(status int, head []byte) bool {
	code, typ, msg := errorCodeFields(head)
	lower := strings.ToLower(msg)
	switch status {
	case http.StatusUnauthorized:
		if code == "invalid_api_key" || code == "account_deactivated" || strings.HasPrefix(msg, "Incorrect API key provided") {
			return true
		}
		return typ == typeAuthentication && !strings.Contains(lower, "beta") && !strings.Contains(lower, "scope")
	case http.StatusForbidden:
		return typ == "permission_error" && strings.Contains(lower, "disabled")
	}
	return false
}

// authFailure handles an upstream 401/403: one that blames the credential is failed over
// (controlsvc pauses the account); any other is relayed to the client as the upstream sent
// it (nil), with no failover and no account mark.
func authFailure(x *exchange, resp *http.Response, wd *watchdog) *failedAttempt {
	head := peekErrorHead(resp)            // passthrough.go
	if quotaFault(resp.StatusCode, head) { // classify.go: out of credit, failed over
		return failure(x, resp, nil, wd)
	}
	if !credentialFault(resp.StatusCode, head) {
		relayError(x, resp, wd.release) // passthrough.go
		return nil
	}
	f := failure(x, resp, nil, wd)
	f.ErrorClass = classCredential
	markLastAttempt(x, classCredential)
	return f
}
