package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"

	"github.com/poolgate/poolgate/plugin/wire"
)

// RejectHeader marks a refusal whose status and body go to the client as they are; its value
// is the reason (docs/design.md, "Refused"). A non-200 reply without it means controlsvc is
// unwell and the plugin answers 503 itself.
const RejectHeader = "X-Poolgate-Reject"

// writeReject answers a refused admission in the client's format (admission.Rejection.Body).
func writeReject(w http.ResponseWriter, path, platform string, rej *admission.Rejection) {
	w.Header().Set(RejectHeader, rej.Reason())
	if rej.RetryAfter() != "" {
		w.Header().Set("Retry-After", rej.RetryAfter())
	}
	writeJSON(w, rej.StatusFor(path), rej.Body(path, platform))
}

// writeInternalError answers a failure of controlsvc itself: logged here, generic to the
// caller (never internals or credentials), and without RejectHeader so the plugin treats it
// as "controlsvc unwell".
func writeInternalError(w http.ResponseWriter, log *slog.Logger, msg string, err error, attrs ...any) {
	log.Error(msg, append(attrs, slog.Any("error", err))...)
	writeJSON(w, http.StatusInternalServerError, wire.OpenAIError{Error: wire.ErrorDetail{Type: "api_error", Message: "Internal error"}})
}

// writeAPIError answers a malformed internal API call (not a client-facing refusal).
func writeAPIError(w http.ResponseWriter, status int, errType, message string) {
	writeJSON(w, status, wire.OpenAIError{Error: wire.ErrorDetail{Type: errType, Message: message}})
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
