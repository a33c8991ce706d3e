// Package convert is the Responses ↔ Anthropic Messages conversion of the poolgate plugin
// (docs/design.md, "Conversion contract"): a Responses request becomes a Messages request
// (Request), and the account's Anthropic event stream becomes the Responses event stream
// the client reads (Stream). It does no I/O and knows nothing of admission or reports:
// the plugin core calls it per attempt and per upstream read. Like the rest of the plugin
// it is interpreted by Yaegi v0.16.1: standard library only (docs/yaegi.md).
package convert

import (
	"encoding/json"
)

// Fields are the top-level fields of a Responses body the conversion reads, as the core's
// validation decoded them (values stay raw: each is decoded when converted).
type Fields struct {
	Model             json.RawMessage `json:"model"`
	Input             json.RawMessage `json:"input"`
	Instructions      json.RawMessage `json:"instructions"`
	MaxOutputTokens   json.RawMessage `json:"max_output_tokens"`
	Temperature       json.RawMessage `json:"temperature"`
	TopP              json.RawMessage `json:"top_p"`
	Tools             json.RawMessage `json:"tools"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls json.RawMessage `json:"parallel_tool_calls"`
	Reasoning         json.RawMessage `json:"reasoning"`
	Text              json.RawMessage `json:"text"`
}

// decodeFields decodes a valid JSON document; ok is false when it is not an object.
func decodeFields(body []byte) (Fields, bool) {
	var f Fields
	if err := json.Unmarshal(body, &f); err != nil {
		return f, false
	}
	return f, true
}

// StatusFailed is the FinalStatus of a stream that ended in response.failed.
const StatusFailed = statusFailed

// RoleUser is the role of a user message, in both APIs.
const RoleUser = roleUser

// Request converts the fields of a Responses request into the Messages body sent to
// upstreamModel (the body's model when empty), always streamed. limit, above 0, caps
// max_tokens (the grant's output cap); cache adds the prompt-caching breakpoints. The
// Tools map the converted tool names back (Stream.SetTools) and hold the warnings. An
// error describes invalid input in words fit for the client's 400.
func Request(f *Fields, upstreamModel string, limit int64, cache bool) ([]byte, *Tools, error) {
	return convertAgentRequest(f, upstreamModel, limit, cache)
}

// Warnings are what the converted request could not carry over: at most maxWarnings short
// strings, nil for none.
func (m *Tools) Warnings() []string {
	if m == nil {
		return nil
	}
	return m.warnings
}

// NewStream starts a conversion answering as responseID ("resp_…") for the client's model,
// created at the given Unix time.
func NewStream(model, responseID string, createdAt int64) *Stream {
	return newResponsesStream(model, responseID, createdAt)
}

// SetTools gives the stream the request's tool map, so that tool calls carry the client's
// names (nil: names pass as they are).
func (s *Stream) SetTools(t *Tools) { s.tools = t }

// Feed converts the next upstream bytes and returns the Responses events they complete
// (reused by the next call).
func (s *Stream) Feed(p []byte) []byte { return s.feed(p) }

// Finish ends the conversion at the upstream's end of stream, with a response.failed when
// the upstream did not end its message.
func (s *Stream) Finish() []byte { return s.finish() }

// Fail ends the stream with a response.failed of the given error type and message.
func (s *Stream) Fail(typ, msg string) []byte { return s.fail(typ, msg) }

// Started reports whether semantic output has been produced (the commit point).
func (s *Stream) Started() bool { return s.started() }

// UsageComplete reports whether the upstream's final usage has been seen.
func (s *Stream) UsageComplete() bool { return s.usageComplete() }

// FinalStatus is the response's terminal status, "" until the terminal event.
func (s *Stream) FinalStatus() string { return s.finalStatus() }

// UpstreamError returns the upstream's in-stream error, when the stream failed on one.
func (s *Stream) UpstreamError() (typ, msg string, ok bool) { return s.upstreamError() }

// AnthropicUsage is the usage so far as an Anthropic usage object, for the report.
func (s *Stream) AnthropicUsage() []byte { return s.anthropicUsage() }

// ResponseJSON is the response object as the final event carries it.
func (s *Stream) ResponseJSON() []byte { return s.responseJSON() }

// AppendJSONString appends s as a JSON string, without HTML escaping.
func AppendJSONString(dst []byte, s string) []byte { return appendJSONString(dst, s) }

// Failure is the error of a stream that ended in response.failed: its Responses error code
// and message.
func (s *Stream) Failure() (code, msg string) { return s.errCode, s.errMsg }

// NextEventEnd returns the index just past the first blank line of b at or after from (-1
// when none) and where the next search may resume: the converter's SSE framing, which the
// core's framing fuzz test (plugin/sse_fuzz_test.go) holds to the same reference as its own.
func NextEventEnd(b []byte, from int) (int, int) { return nextEventEnd(b, from) }
