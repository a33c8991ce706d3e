package admission

import (
	"net/http"

	"github.com/poolgate/poolgate/plugin/wire"
)

// Reject reasons.
const (
	ReasonAuth            = "auth"
	ReasonBilling         = "billing"
	ReasonUserConcurrency = "user_concurrency"
	ReasonNoAccount       = "no_account"
	ReasonModelNotFound   = "model_not_found"
	ReasonInvalid         = "invalid"
)

// AnthropicPath is the one endpoint whose clients expect Anthropic's error envelope.
const AnthropicPath = "/v1/messages"

// Rejection is a client-facing refusal of an admission.
type Rejection struct {
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

// StatusFor is the refusal's status on path.
func (rej *Rejection) StatusFor(path string) int {
	if path == AnthropicPath && rej.anthropicStatus != 0 {
		return rej.anthropicStatus
	}
	return rej.status
}

// Reason is the refusal's reason, the value of the gateway's X-Poolgate-Reject header.
func (rej *Rejection) Reason() string { return rej.reason }

// Status is the refusal's status outside /v1/messages.
func (rej *Rejection) Status() int { return rej.status }

// RetryAfter is the refusal's Retry-After header (seconds), "" for none.
func (rej *Rejection) RetryAfter() string { return rej.retryAfter }

// Body is the refusal's body in the client's API format (rejectBody).
func (rej *Rejection) Body(path, platform string) any { return rejectBody(path, platform, rej) }

// The admission refusals, with their statuses and messages (docs/design.md,
// "POST /internal/v1/admit").
var (
	RejectAuth = &Rejection{status: http.StatusUnauthorized, reason: ReasonAuth, errType: "authentication_error",
		message: "Invalid API key"}

	rejectUserConcurrency = &Rejection{status: http.StatusTooManyRequests, reason: ReasonUserConcurrency,
		errType: "rate_limit_error", message: "Concurrency limit exceeded for user, please retry later"}

	// rejectFailedAccount: a re-admission's failed.account_id is not the account its grant
	// holds (docs/design.md, POST /internal/v1/admit).
	rejectFailedAccount = &Rejection{status: http.StatusConflict, reason: ReasonInvalid, errType: "invalid_request_error",
		message: "failed.account_id is not the grant's account"}

	rejectNoAccount = &Rejection{status: http.StatusServiceUnavailable, reason: ReasonNoAccount, errType: "api_error",
		message: "Service temporarily unavailable"}
)

// RejectInvalid refuses a malformed admission with message.
func RejectInvalid(message string) *Rejection {
	return &Rejection{status: http.StatusBadRequest, reason: ReasonInvalid, errType: "invalid_request_error", message: message}
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
func rejectBody(path, platform string, rej *Rejection) any {
	switch {
	case path == AnthropicPath:
		return anthropicError{Type: "error", Error: errorDetail{Type: anthropicErrorType(rej), Message: rej.message}}
	case platform == PlatformAnthropic && isResponsesPath(path):
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
func anthropicErrorType(rej *Rejection) string {
	return wire.AnthropicErrorType(rej.StatusFor(AnthropicPath), rej.errType)
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
	rejectUserQueueFull = &Rejection{status: http.StatusTooManyRequests, reason: ReasonUserQueueFull,
		errType: "rate_limit_error", message: msgQueueFull}

	rejectAccountQueueFull = &Rejection{status: http.StatusTooManyRequests, reason: ReasonAccountQueueFull,
		errType: "rate_limit_error", message: msgQueueFull}

	rejectAccountConcurrency = &Rejection{status: http.StatusTooManyRequests, reason: ReasonAccountConcurrency,
		errType: "rate_limit_error", message: "Concurrency limit exceeded for account, please retry later"}
)
