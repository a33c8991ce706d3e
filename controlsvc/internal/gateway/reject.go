package gateway

import (
	"encoding/json"
	"fmt"
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
}

// The refusals of issue 2 §4, with its statuses and messages.
var (
	rejectAuth = &rejection{status: http.StatusUnauthorized, reason: ReasonAuth, errType: "authentication_error",
		message: "Invalid API key"}

	rejectUserConcurrency = &rejection{status: http.StatusTooManyRequests, reason: ReasonUserConcurrency,
		errType: "rate_limit_error", message: "Concurrency limit exceeded for user, please retry later"}

	rejectNoAccount = &rejection{status: http.StatusServiceUnavailable, reason: ReasonNoAccount, errType: "api_error",
		message: "Service temporarily unavailable"}
)

func rejectModelNotFound(model string) *rejection {
	return &rejection{status: http.StatusNotFound, reason: ReasonModelNotFound, errType: "model_not_found",
		message: fmt.Sprintf("Model %q is not supported by any configured account in this group", model)}
}

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

// errorBody renders an error in the format of the client's API, chosen by its path: the
// OpenAI envelope with code (when set), Anthropic's without.
func errorBody(path, errType, message, code string) any {
	d := errorDetail{Type: errType, Message: message}
	if path == anthropicPath {
		return anthropicError{Type: "error", Error: d}
	}
	d.Code = code
	return openAIError{Error: d}
}

// writeReject answers a refused admission.
func writeReject(w http.ResponseWriter, path string, rej *rejection) {
	w.Header().Set(RejectHeader, rej.reason)
	if rej.retryAfter != "" {
		w.Header().Set("Retry-After", rej.retryAfter)
	}
	writeJSON(w, rej.status, errorBody(path, rej.errType, rej.message, rej.code))
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
