package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/poolgate/poolgate/plugin/wire"
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

// The admission refusals, with their statuses and messages (docs/design.md,
// "POST /internal/v1/admit").
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

// The error envelopes are plugin/wire's, the plugin's and controlsvc's one definition.
type (
	errorDetail    = wire.ErrorDetail
	openAIError    = wire.OpenAIError
	anthropicError = wire.AnthropicError
	codeError      = wire.CodeError
	codeDetail     = wire.CodeDetail
)

// msgNoAvailableAccounts words no_account on the Responses-on-Anthropic path (docs/design.md,
// "Group model rules and dispatch").
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

// anthropicErrorType is the refusal's type on /v1/messages: its own when Anthropic has it
// (billing_error included), else Anthropic's type for the status (model_not_found →
// not_found_error, rate_limit_exceeded and insufficient_quota → rate_limit_error), by the
// table the plugin uses too (wire.AnthropicErrorType).
func anthropicErrorType(rej *rejection) string {
	return wire.AnthropicErrorType(rej.statusFor(anthropicPath), rej.errType)
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

// Reasons of the wait queues (docs/design.md, "POST /internal/v1/admit").
const (
	ReasonUserQueueFull      = "user_queue_full"
	ReasonAccountConcurrency = "account_concurrency"
	ReasonAccountQueueFull   = "account_queue_full"
)

// msgQueueFull is the full-queue message, the same for users and accounts.
const msgQueueFull = "Too many pending requests, please retry later"

var (
	rejectUserQueueFull = &rejection{status: http.StatusTooManyRequests, reason: ReasonUserQueueFull,
		errType: "rate_limit_error", message: msgQueueFull}

	rejectAccountQueueFull = &rejection{status: http.StatusTooManyRequests, reason: ReasonAccountQueueFull,
		errType: "rate_limit_error", message: msgQueueFull}

	rejectAccountConcurrency = &rejection{status: http.StatusTooManyRequests, reason: ReasonAccountConcurrency,
		errType: "rate_limit_error", message: "Concurrency limit exceeded for account, please retry later"}
)
