// Package wire holds the JSON shapes the plugin and controlsvc exchange (docs/design.md,
// "Internal API") and the client error envelopes, types and codes they write (the plugin's
// core and plugin/convert alike), so that each is written once. The plugin imports it
// interpreted by Yaegi v0.16.1 and controlsvc compiled: standard library only, plain structs
// and functions, no methods that encoding/json would call (docs/yaegi.md).
package wire

import "net/http"

// Error types of the client-facing error bodies. Anthropic's are those of
// https://docs.anthropic.com/en/api/errors; upstream_error is the plugin's own (OpenAI
// shape only: AnthropicErrorType replaces it).
const (
	TypeInvalidRequest  = "invalid_request_error"
	TypeAuthentication  = "authentication_error"
	TypeBilling         = "billing_error"
	TypePermission      = "permission_error"
	TypeNotFound        = "not_found_error"
	TypeRequestTooLarge = "request_too_large"
	TypeRateLimit       = "rate_limit_error"
	TypeAPI             = "api_error"
	TypeTimeout         = "timeout_error"
	TypeOverloaded      = "overloaded_error"
	TypeUpstream        = "upstream_error"
)

// StatusOverloaded is Anthropic's "overloaded" status.
const StatusOverloaded = 529

// AnthropicErrorType returns typ when it is one of Anthropic's error types, else the type
// Anthropic documents for status (https://docs.anthropic.com/en/api/errors): 400
// invalid_request_error, 401 authentication_error, 402 billing_error, 403
// permission_error, 404 not_found_error, 413 request_too_large, 429 rate_limit_error, 504
// timeout_error, 529 overloaded_error; another 4xx is invalid_request_error ("may also be
// used for other 4XX status codes"), anything else api_error (a 500, a 502, and an
// in-stream error, whose status is the stream's 200). Anthropic clients then recognise the
// gateway's own errors, upstream_error and OpenAI's codes included.
func AnthropicErrorType(status int, typ string) string {
	switch typ {
	case TypeInvalidRequest, TypeAuthentication, TypeBilling, TypePermission, TypeNotFound,
		TypeRequestTooLarge, TypeRateLimit, TypeAPI, TypeTimeout, TypeOverloaded:
		return typ
	}
	switch status {
	case http.StatusUnauthorized:
		return TypeAuthentication
	case http.StatusPaymentRequired:
		return TypeBilling
	case http.StatusForbidden:
		return TypePermission
	case http.StatusNotFound:
		return TypeNotFound
	case http.StatusRequestEntityTooLarge:
		return TypeRequestTooLarge
	case http.StatusTooManyRequests:
		return TypeRateLimit
	case http.StatusGatewayTimeout:
		return TypeTimeout
	case StatusOverloaded:
		return TypeOverloaded
	}
	if status >= 400 && status < 500 {
		return TypeInvalidRequest
	}
	return TypeAPI
}

// ErrorDetail is the error object of both envelopes; Code is OpenAI's (omitted when "").
type ErrorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Code    string `json:"code,omitempty"`
}

// OpenAIError is the {"error":{"type","message"}} envelope of OpenAI-style endpoints and of
// the internal and admin APIs.
type OpenAIError struct {
	Error ErrorDetail `json:"error"`
}

// AnthropicError is Anthropic's {"type":"error","error":{…}} envelope.
type AnthropicError struct {
	Type  string      `json:"type"`
	Error ErrorDetail `json:"error"`
}

// CodeError is the {"error":{"code","message"}} envelope of /v1/responses on an Anthropic
// group (docs/design.md, "Conversion contract").
type CodeError struct {
	Error CodeDetail `json:"error"`
}

// CodeDetail is CodeError's error object.
type CodeDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of a Responses response.failed event (error.code), by error type.
const (
	CodeRateLimitExceeded    = "rate_limit_exceeded"
	CodeInvalidRequest       = "invalid_request"
	CodePermissionDenied     = "permission_denied"
	CodeAuthenticationFailed = "authentication_failed"
	CodeUpstreamError        = "upstream_error"
	CodeServerError          = "server_error"
)

// ResponsesErrorCode maps an error type to the error.code of a response.failed event.
func ResponsesErrorCode(typ string) string {
	switch typ {
	case TypeRateLimit:
		return CodeRateLimitExceeded
	case TypeInvalidRequest:
		return CodeInvalidRequest
	case TypePermission:
		return CodePermissionDenied
	case TypeAuthentication:
		return CodeAuthenticationFailed
	case TypeUpstream:
		return CodeUpstreamError
	}
	return CodeServerError
}

// MsgStreamCut is the in-stream error message of a stream the upstream ended without its
// terminal event, written by the core's relay and by the conversion alike.
const MsgStreamCut = "Upstream stream ended unexpectedly"
