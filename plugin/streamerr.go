package plugin

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
	"github.com/poolgate/poolgate/plugin/wire"
)

// streamErrorCode is the {code, message} error object of Responses (wire.CodeDetail).
type streamErrorCode = wire.CodeDetail

type failedResponse struct {
	ID        string          `json:"id"`
	Object    string          `json:"object"`
	CreatedAt int64           `json:"created_at"`
	Model     string          `json:"model"`
	Status    string          `json:"status"`
	Output    []string        `json:"output"`
	Error     streamErrorCode `json:"error"`
}

type responseFailedEvent struct {
	Type     string         `json:"type"`
	Response failedResponse `json:"response"`
}

type chatStreamErrorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Code    string `json:"code"`
}

type chatStreamError struct {
	Error chatStreamErrorDetail `json:"error"`
}

// streamErrorFrame returns the terminal SSE frame for an error in the protocol of path:
//   - /v1/responses: `event: response.failed` with a failed response carrying error.code
//     (mapped from typ) and error.message;
//   - /v1/chat/completions: a `data: {"error":{…}}` frame, which the OpenAI SDKs raise;
//   - /v1/messages: Anthropic's `event: error` with {"type":"error","error":{…}}.
//
// The frame has no leading blank line: it must follow a complete event or a keep-alive
// comment line, and a blank line right after a comment would dispatch an empty event.
func streamErrorFrame(path, model, typ, msg string) []byte {
	if typ == "" {
		typ = typeAPI
	}
	var (
		event string
		v     interface{}
	)
	switch path {
	case pathResponses:
		event = "response.failed"
		v = responseFailedEvent{Type: "response.failed", Response: failedResponse{
			ID:        newResponseID(),
			Object:    "response",
			CreatedAt: time.Now().Unix(),
			Model:     model,
			Status:    "failed",
			Output:    []string{},
			Error:     streamErrorCode{Code: wire.ResponsesErrorCode(typ), Message: msg},
		}}
	case pathMessages:
		event = "error"
		// The status line went out as 200; the type alone must tell Anthropic clients what
		// failed, so a plugin type they do not know (upstream_error) becomes api_error.
		v = anthropicError{Type: "error", Error: wire.ErrorDetail{Type: wire.AnthropicErrorType(http.StatusOK, typ), Message: msg}}
	default:
		v = chatStreamError{Error: chatStreamErrorDetail{Type: typ, Message: msg, Code: typ}}
	}
	data, err := jsonsse.Encode(v)
	if err != nil {
		data = []byte(`{"error":{"type":"api_error","message":"Internal server error","code":"api_error"}}`)
	}
	out := make([]byte, 0, len(data)+64)
	if event != "" {
		out = append(out, "event: "...)
		out = append(out, event...)
		out = append(out, '\n')
	}
	out = append(out, "data: "...)
	out = append(out, data...)
	out = append(out, "\n\n"...)
	return out
}

// writeStreamError ends an SSE response whose status line was already sent with a terminal
// error in the client's protocol, and flushes it. rw must be the writer Traefik passed in
// (a plugin-defined wrapper would hide http.Flusher under Yaegi). A failing write is
// ignored: the client is gone and there is nobody left to tell.
func writeStreamError(rw http.ResponseWriter, path, model, typ, msg string) {
	defer func() { _ = recover() }()
	if _, err := rw.Write(streamErrorFrame(path, model, typ, msg)); err != nil {
		return
	}
	if f, ok := rw.(http.Flusher); ok {
		f.Flush()
	}
}

// newResponseID returns "resp_" and 24 random hex digits.
func newResponseID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "resp_t" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return "resp_" + hex.EncodeToString(b[:])
}
