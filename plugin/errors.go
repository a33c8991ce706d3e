package plugin

import (
	"net/http"
	"strconv"

	"github.com/poolgate/poolgate/plugin/wire"
)

// Error types of the client-facing error bodies (plugin/wire; docs/design.md,
// "POST /internal/v1/admit").
const (
	typeInvalidRequest = wire.TypeInvalidRequest
	typeAuthentication = wire.TypeAuthentication
	typeAPI            = wire.TypeAPI
	typeRateLimit      = wire.TypeRateLimit
	typeUpstream       = wire.TypeUpstream
	typeOverloaded     = wire.TypeOverloaded // Anthropic's
)

// Messages the plugin writes itself; the texts are part of the client contract (clients
// and the e2e tests match them).
const (
	msgInvalidAPIKey    = "Invalid API key"
	msgUnavailable      = "Service temporarily unavailable"
	msgInternal         = "Internal server error"
	msgClientGone       = "Client closed request"
	msgUpstreamFailed   = "Upstream request failed"
	msgReadBody         = "Failed to read request body"
	msgEmptyBody        = "Request body is empty"
	msgParseBody        = "Failed to parse request body"
	msgModelRequired    = "model is required"
	msgModelTooLong     = "Invalid model"
	msgStreamType       = "invalid stream field type"
	msgMessagesRequired = "messages: Field required"
	msgCallIDRequired   = "function_call_output requires call_id or previous_response_id; " +
		"if relying on history, ensure store=true and reuse previous_response_id"
	msgItemReference = "function_call_output requires item_reference ids matching each call_id, " +
		"or previous_response_id/tool_call context; if relying on history, ensure store=true " +
		"and reuse previous_response_id"
)

// statusOverloaded is Anthropic's "overloaded" status.
const statusOverloaded = wire.StatusOverloaded

// statusClientClosed is nginx's "client closed request", used in reports
// (docs/design.md, "POST /internal/v1/reports").
const statusClientClosed = 499

// clientError is an error answer the plugin writes itself. It is a plain struct, not an
// error implementation: interpreted error types do not survive errors.As under Yaegi.
type clientError struct {
	status int
	typ    string
	msg    string
	// retryAfter is copied into a Retry-After header when not empty.
	retryAfter string
}

func newClientError(status int, typ, msg string) *clientError {
	return &clientError{status: status, typ: typ, msg: msg}
}

func bodyTooLarge(limit int64) *clientError {
	mb := limit / (1 << 20)
	return newClientError(http.StatusRequestEntityTooLarge, typeInvalidRequest,
		"Request body too large, limit is "+strconv.FormatInt(mb, 10)+"MB")
}

func badRequest(msg string) *clientError {
	return newClientError(http.StatusBadRequest, typeInvalidRequest, msg)
}

// Shapes of the client-facing error bodies.
const (
	shapeOpenAI    = 0 // {"error":{"type","message"}}
	shapeAnthropic = 1 // {"type":"error","error":{"type","message"}}
	// shapeCode is the shape of /v1/responses answered by an Anthropic account
	// (docs/design.md, "Conversion contract"):
	// {"error":{"code","message"}}.
	shapeCode = 2
)

// writeShapedError writes e as a JSON error body of the given shape.
func writeShapedError(rw http.ResponseWriter, shape int, requestID string, e *clientError) {
	var body []byte
	switch shape {
	case shapeAnthropic:
		body = errorBody(true, wire.AnthropicErrorType(e.status, e.typ), e.msg)
	case shapeCode:
		body = codeErrorBody(e.typ, e.msg)
	default:
		body = errorBody(false, e.typ, e.msg)
	}
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if requestID != "" {
		h.Set(headerRequestID, requestID)
	}
	if e.retryAfter != "" {
		h.Set("Retry-After", e.retryAfter)
	}
	rw.WriteHeader(e.status)
	_, _ = rw.Write(body)
}

// writeRejection copies a controlsvc refusal to the client as it is: status, body and
// Retry-After (docs/design.md, "Refused").
func writeRejection(rw http.ResponseWriter, requestID string, r *rejection) {
	h := rw.Header()
	h.Set("Content-Type", r.contentType)
	h.Set("Content-Length", strconv.Itoa(len(r.body)))
	h.Set(headerRequestID, requestID)
	if r.retryAfter != "" {
		h.Set("Retry-After", r.retryAfter)
	}
	rw.WriteHeader(r.status)
	_, _ = rw.Write(r.body)
}
