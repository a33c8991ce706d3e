package convert

import (
	"bytes"
	"encoding/json"
)

// The few JSON and SSE helpers the conversion shares with the plugin core. They are small
// copies of the core's (json.go, sse.go, usage.go): the core imports this package, so this
// package cannot import the core, and the wire package holds only what controlsvc shares.

// Error types and codes the converted stream writes (plugin errors.go, streamerr.go).
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typeAPI            = "api_error"
	typeRateLimit      = "rate_limit_error"
	typeUpstream       = "upstream_error"

	codeRateLimitExceeded    = "rate_limit_exceeded"
	codeInvalidRequest       = "invalid_request"
	codePermissionDenied     = "permission_denied"
	codeAuthenticationFailed = "authentication_failed"
	codeUpstreamError        = "upstream_error"
	codeServerError          = "server_error"
)

// msgStreamCut is the core's text for a stream that ended without its terminal event.
const msgStreamCut = "Upstream stream ended unexpectedly"

// responsesErrorCode maps an error type to the error.code of a response.failed event.
func responsesErrorCode(typ string) string {
	switch typ {
	case typeRateLimit:
		return codeRateLimitExceeded
	case typeInvalidRequest:
		return codeInvalidRequest
	case "permission_error":
		return codePermissionDenied
	case typeAuthentication:
		return codeAuthenticationFailed
	case typeUpstream:
		return codeUpstreamError
	}
	return codeServerError
}

// maxTokenCount caps a token count read from a client body (as the core's).
const maxTokenCount = 1 << 40

// maxCarry bounds one SSE event kept across reads.
const maxCarry = 4 << 20

var (
	lfLF       = []byte("\n\n")
	lfCRLF     = []byte("\n\r\n")
	eventTag   = []byte("event:")
	dataPrefix = []byte("data:")
)

// encodeJSON marshals v without HTML escaping (prompts pass through unchanged).
func encodeJSON(v interface{}) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// rawString returns the value of a JSON string; ok is false for anything else.
func rawString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// rawBool returns the value of a JSON boolean; ok is false for anything else, null included.
func rawBool(raw json.RawMessage) (bool, bool) {
	switch string(raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

func isNullRaw(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

type errorEnvelope struct {
	Error json.RawMessage `json:"error"`
}

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// errorFields returns the type and message of an error body, each falling back to the
// given default when absent.
func errorFields(body []byte, defType, defMsg string) (string, string) {
	typ, msg := defType, defMsg
	var env errorEnvelope
	if json.Unmarshal(body, &env) != nil || isNullRaw(env.Error) {
		return typ, msg
	}
	if s, ok := rawString(env.Error); ok {
		if s != "" {
			msg = s
		}
		return typ, msg
	}
	var d errorDetail
	if json.Unmarshal(env.Error, &d) != nil {
		return typ, msg
	}
	if d.Type != "" {
		typ = d.Type
	}
	if d.Message != "" {
		msg = d.Message
	}
	return typ, msg
}

// sseFields returns the event name and the first data value of one SSE event block
// (either may be empty). Comment lines are skipped.
func sseFields(block []byte) (name, data []byte) {
	for len(block) > 0 {
		line := block
		rest := []byte(nil)
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, rest = block[:i], block[i+1:]
		}
		block = rest
		line = bytes.TrimRight(line, "\r")
		switch {
		case bytes.HasPrefix(line, eventTag):
			name = bytes.TrimSpace(line[len(eventTag):])
		case data == nil && bytes.HasPrefix(line, dataPrefix):
			data = bytes.TrimSpace(line[len(dataPrefix):])
		}
	}
	return name, data
}
