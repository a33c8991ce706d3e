// Package jsonsse holds the JSON value and SSE framing helpers that the plugin core
// (plugin/) and the conversion (plugin/convert) both use: the core imports convert, so
// convert cannot import the core, and plugin/wire holds only the shapes shared with
// controlsvc. Both import it interpreted by Yaegi v0.16.1: standard library only, plain
// functions (docs/yaegi.md). The work is left to encoding/json and bytes, which run
// compiled inside Traefik.
package jsonsse

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// MaxTokenCount caps a token count read from a client body: far above any model's output,
// low enough that controlsvc's arithmetic never comes near overflowing.
const MaxTokenCount = 1 << 40

// Encode marshals v without HTML escaping (prompts pass through unchanged) and without
// the encoder's trailing newline.
func Encode(v interface{}) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// String returns the value of a JSON string; ok is false for anything else. raw comes
// from a decoded document, so it is valid JSON: a string without escapes and with valid
// UTF-8 is its bytes between the quotes, two compiled calls instead of a json.Unmarshal
// (which also replaces invalid UTF-8, hence the check).
func String(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	if n := len(raw); n >= 2 && raw[n-1] == '"' && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : n-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// Bool returns the value of a JSON boolean; ok is false for anything else, null included.
func Bool(raw json.RawMessage) (bool, bool) {
	switch string(raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// IsNull reports whether raw is absent or JSON null.
func IsNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// ErrorEnvelope reads both error shapes: OpenAI's {"error":{…}} (error may also be a plain
// string) and Anthropic's {"type":"error","error":{…}}.
type ErrorEnvelope struct {
	Error json.RawMessage `json:"error"`
}

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// ErrorFields returns the type and message of an error body, each falling back to the
// given default when absent, for turning the body into an in-stream error.
func ErrorFields(body []byte, defType, defMsg string) (string, string) {
	typ, msg := defType, defMsg
	var env ErrorEnvelope
	if json.Unmarshal(body, &env) != nil || IsNull(env.Error) {
		return typ, msg
	}
	if s, ok := String(env.Error); ok {
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
