package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"
)

// RejectHeader marks a refusal whose status and body go to the client as they are; its value
// is the reason (docs/design.md, "Refused"). A non-200 reply without it means controlsvc is
// unwell and the plugin answers 503 itself.
const RejectHeader = "X-Poolgate-Reject"

// Reject reasons.
const (
	ReasonAuth            = "auth"
	ReasonBilling         = "billing"
	ReasonUserConcurrency = "user_concurrency"
	ReasonNoAccount       = "no_account"
	ReasonModelNotFound   = "model_not_found"
	ReasonInvalid         = "invalid"
)

// anthropicPath is the one endpoint whose clients expect Anthropic's error envelope.
const anthropicPath = "/v1/messages"

// rejection is a client-facing refusal of an admission.
type rejection struct {
	status  int
	reason  string
	errType string
	message string
	// code is the OpenAI error's code (omitted when empty; Anthropic's envelope has none).
	code string
	// retryAfter, when set, goes out as the Retry-After header (seconds).
	retryAfter string
	// anthropicStatus, when set, is the status on /v1/messages (402 for billing refusals).
	anthropicStatus int
}

// statusFor is the refusal's status on path.
func (rej *rejection) statusFor(path string) int {
	if path == anthropicPath && rej.anthropicStatus != 0 {
		return rej.anthropicStatus
	}
	return rej.status
}

// The refusals of issue 2 §4, with its statuses and messages.
var (
	rejectAuth = &rejection{status: http.StatusUnauthorized, reason: ReasonAuth, errType: "authentication_error",
		message: "Invalid API key"}

	rejectUserConcurrency = &rejection{status: http.StatusTooManyRequests, reason: ReasonUserConcurrency,
		errType: "rate_limit_error", message: "Concurrency limit exceeded for user, please retry later"}

	// rejectFailedAccount: a re-admission's failed.account_id is not the account its grant
	// holds (docs/design.md, POST /internal/v1/admit).
	rejectFailedAccount = &rejection{status: http.StatusConflict, reason: ReasonInvalid, errType: "invalid_request_error",
		message: "failed.account_id is not the grant's account"}

	rejectNoAccount = &rejection{status: http.StatusServiceUnavailable, reason: ReasonNoAccount, errType: "api_error",
		message: "Service temporarily unavailable"}
)

func rejectInvalid(message string) *rejection {
	return &rejection{status: http.StatusBadRequest, reason: ReasonInvalid, errType: "invalid_request_error", message: message}
}

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Code    string `json:"code,omitempty"`
}

// openAIError is the {"error":{"type","message"}} envelope of OpenAI-style endpoints and of
// the internal and admin APIs.
type openAIError struct {
	Error errorDetail `json:"error"`
}

// anthropicError is Anthropic's {"type":"error","error":{…}} envelope
// (https://docs.anthropic.com/en/api/errors).
type anthropicError struct {
	Type  string      `json:"type"`
	Error errorDetail `json:"error"`
}

// codeError is the {"error":{"code","message"}} envelope of /v1/responses on an Anthropic
// group (issue 5 §5; sub2api-behaviour.md §2.3).
type codeError struct {
	Error codeDetail `json:"error"`
}

type codeDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// msgNoAvailableAccounts words no_account on the Responses-on-Anthropic path (issue 5 §5).
const msgNoAvailableAccounts = "No available accounts"

// rejectBody renders a refusal in the format of the client's API, chosen by its path and the
// key's group's platform ("" before authentication): Anthropic's envelope with Anthropic's
// error type on /v1/messages; {"error":{"code","message"}} on /v1/responses served by an
// Anthropic group, the code being the OpenAI code or else the type; otherwise the OpenAI
// envelope with code (when set).
func rejectBody(path, platform string, rej *rejection) any {
	switch {
	case path == anthropicPath:
		return anthropicError{Type: "error", Error: errorDetail{Type: anthropicErrorType(rej), Message: rej.message}}
	case platform == platformAnthropic && isResponsesPath(path):
		d := codeDetail{Code: rej.code, Message: rej.message}
		if d.Code == "" {
			d.Code = rej.errType
		}
		if rej.reason == ReasonNoAccount {
			d.Message = msgNoAvailableAccounts
		}
		return codeError{Error: d}
	}
	return openAIError{Error: errorDetail{Type: rej.errType, Message: rej.message, Code: rej.code}}
}

// anthropicErrorTypes are the types of Anthropic's error envelope
// (https://docs.anthropic.com/en/api/errors).
var anthropicErrorTypes = map[string]bool{
	"invalid_request_error": true, "authentication_error": true, "billing_error": true,
	"permission_error": true, "not_found_error": true, "request_too_large": true,
	"rate_limit_error": true, "timeout_error": true, "overloaded_error": true, "api_error": true,
}

// anthropicErrorType is the refusal's type on /v1/messages: its own when Anthropic has it
// (billing_error included), else Anthropic's type for the status (model_not_found →
// not_found_error, rate_limit_exceeded and insufficient_quota → rate_limit_error).
func anthropicErrorType(rej *rejection) string {
	if anthropicErrorTypes[rej.errType] {
		return rej.errType
	}
	switch rej.statusFor(anthropicPath) {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	if rej.status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// writeReject answers a refused admission in the client's format (rejectBody).
func writeReject(w http.ResponseWriter, path, platform string, rej *rejection) {
	w.Header().Set(RejectHeader, rej.reason)
	if rej.retryAfter != "" {
		w.Header().Set("Retry-After", rej.retryAfter)
	}
	writeJSON(w, rej.statusFor(path), rejectBody(path, platform, rej))
}

// writeInternalError answers a failure of controlsvc itself: logged here, generic to the
// caller (never internals or credentials), and without RejectHeader so the plugin treats it
// as "controlsvc unwell".
func writeInternalError(w http.ResponseWriter, log *slog.Logger, msg string, err error, attrs ...any) {
	log.Error(msg, append(attrs, slog.Any("error", err))...)
	writeJSON(w, http.StatusInternalServerError, openAIError{Error: errorDetail{Type: "api_error", Message: "Internal error"}})
}

// writeAPIError answers a malformed internal API call (not a client-facing refusal).
func writeAPIError(w http.ResponseWriter, status int, errType, message string) {
	writeJSON(w, status, openAIError{Error: errorDetail{Type: errType, Message: message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own plain structs are marshalled here; this cannot happen.
		status, b = http.StatusInternalServerError, []byte(`{"error":{"type":"api_error","message":"Internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Reasons of the wait queues (issue 3 §1–§2).
const (
	ReasonUserQueueFull      = "user_queue_full"
	ReasonAccountConcurrency = "account_concurrency"
	ReasonAccountQueueFull   = "account_queue_full"
)

// msgQueueFull is the full-queue message, the same for users and accounts (issue 3 §1).
const msgQueueFull = "Too many pending requests, please retry later"

var (
	rejectUserQueueFull = &rejection{status: http.StatusTooManyRequests, reason: ReasonUserQueueFull,
		errType: "rate_limit_error", message: msgQueueFull}

	rejectAccountQueueFull = &rejection{status: http.StatusTooManyRequests, reason: ReasonAccountQueueFull,
		errType: "rate_limit_error", message: msgQueueFull}

	rejectAccountConcurrency = &rejection{status: http.StatusTooManyRequests, reason: ReasonAccountConcurrency,
		errType: "rate_limit_error", message: "Concurrency limit exceeded for account, please retry later"}
)
