package plugin

// The one JSON seam of the plugin: every encoding/json call and every wire type lives here.
// encoding/json is compiled into Traefik, so decoding into narrow structs and passing bodies
// through as json.RawMessage costs about what it costs natively, while hand-written
// scanning would run interpreted (docs/yaegi.md, "What costs what under the interpreter").

import (
	"encoding/json"
	"strconv"

	"github.com/poolgate/poolgate/plugin/jsonsse"
	"github.com/poolgate/poolgate/plugin/wire"
)

// Usage formats: how controlsvc must read a report's usage object.
const (
	usageResponses = wire.UsageResponses
	usageChat      = wire.UsageChat
	usageAnthropic = wire.UsageAnthropic
)

// ---- controlsvc internal API (docs/design.md) ----

// The shapes of the admit and reports calls are plugin/wire's, shared with controlsvc.
type (
	admitRequest  = wire.AdmitRequest
	failedAttempt = wire.FailedAttempt
	grant         = wire.Grant
	report        = wire.Report
	attemptReport = wire.Attempt
	reportBatch   = wire.ReportBatch
)

// lease is one live grant in POST /internal/v1/renew.
type lease struct {
	GrantID   string `json:"grant_id"`
	UserID    int64  `json:"user_id"`
	AccountID int64  `json:"account_id"`
	// Hedged is the grant's second account while a hedge holds one (hedge.go): renewed as
	// a lease entry of its own, since the renew contract names one account per entry.
	Hedged int64 `json:"-"`
}

type renewBatch struct {
	Leases []lease `json:"leases"`
}

// decodeGrant parses an admit 200 body; ok is false unless it names a grant and a base URL.
func decodeGrant(data []byte) (*grant, bool) {
	var g grant
	if err := json.Unmarshal(data, &g); err != nil || g.GrantID == "" || g.BaseURL == "" {
		return nil, false
	}
	return &g, true
}

// rawJSON turns extracted usage bytes into the report's raw field; nil stays JSON null.
func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

// ---- client request bodies ----

// requestFields are the top-level fields of a client body the plugin looks at.
type requestFields struct {
	Model              json.RawMessage `json:"model"`
	Stream             json.RawMessage `json:"stream"`
	StreamOptions      json.RawMessage `json:"stream_options"`
	PreviousResponseID json.RawMessage `json:"previous_response_id"`
	Input              json.RawMessage `json:"input"`
	// Sources of the session seed (session.go).
	PromptCacheKey json.RawMessage `json:"prompt_cache_key"`
	Metadata       json.RawMessage `json:"metadata"`     // Claude Code's metadata.user_id
	Instructions   json.RawMessage `json:"instructions"` // Responses
	System         json.RawMessage `json:"system"`       // Anthropic Messages
	Messages       json.RawMessage `json:"messages"`     // Chat Completions, Anthropic Messages
	// Output maxima, for the cost estimate: Responses' max_output_tokens, Chat's
	// max_completion_tokens and its older max_tokens, Messages' max_tokens.
	MaxOutputTokens     json.RawMessage `json:"max_output_tokens"`
	MaxCompletionTokens json.RawMessage `json:"max_completion_tokens"`
	MaxTokens           json.RawMessage `json:"max_tokens"`
	// The rest of what the Responses → Messages conversion reads (plugin/convert,
	// request.go), so that a converted request needs no second decode of the whole body.
	Temperature       json.RawMessage `json:"temperature"`
	TopP              json.RawMessage `json:"top_p"`
	Tools             json.RawMessage `json:"tools"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls json.RawMessage `json:"parallel_tool_calls"`
	Reasoning         json.RawMessage `json:"reasoning"`
	Text              json.RawMessage `json:"text"` // text.format (structured output)
}

// inputItem is a Responses input item, or a Chat Completions or Anthropic message, reduced
// to the fields the call_id checks and the session seed read. The strings are decoded by
// encoding/json itself (compiled), so that a loop over the items does no decoding of its
// own; a field that is not a string reads as "". Content stays raw (a string or parts).
type inputItem struct {
	Type    string          `json:"type"`
	CallID  string          `json:"call_id"`
	ID      string          `json:"id"`
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type streamOptions struct {
	IncludeUsage json.RawMessage `json:"include_usage"`
}

func jsonValid(b []byte) bool { return json.Valid(b) }

// parseRequestFields is the body's one pass: json.Unmarshal checks the whole document
// before it decodes (compiled, so it costs what it costs natively), and every field is
// raw, so an object never fails on a type. An error is a syntax error, or valid JSON that
// is not an object (validateBody tells them apart, on that path only).
func parseRequestFields(body []byte) (requestFields, error) {
	var f requestFields
	err := json.Unmarshal(body, &f)
	return f, err
}

// rawCount returns a JSON number as a non-negative whole count, capped at
// jsonsse.MaxTokenCount; 0 for anything else (absent, null, negative, not a number).
func rawCount(raw json.RawMessage) int64 {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f <= 0 {
		return 0
	}
	if f >= jsonsse.MaxTokenCount {
		return jsonsse.MaxTokenCount
	}
	return int64(f)
}

// decodeInputItems decodes a Responses "input" array or a "messages" array (raw from a
// decoded document); ok is false when raw is not an array. A field of another type than
// its string reads as "", and an element that is not an object as an empty item: Unmarshal
// decodes the rest and reports the first such mismatch, which is no reason to drop the
// others.
func decodeInputItems(raw json.RawMessage) ([]inputItem, bool) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, false
	}
	var items []inputItem
	if err := json.Unmarshal(raw, &items); err != nil {
		if _, typeOnly := err.(*json.UnmarshalTypeError); !typeOnly {
			return nil, false
		}
	}
	return items, true
}

// includeUsageSet reports whether stream_options.include_usage is true.
func includeUsageSet(raw json.RawMessage) bool {
	var so streamOptions
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &so) != nil {
		return false
	}
	return string(so.IncludeUsage) == "true"
}

// rewriteBody returns body with the top-level model replaced (when model is not empty),
// stream_options.include_usage set (when includeUsage) and limitField set to limit (when
// both are set). body is never modified.
func rewriteBody(body []byte, model string, includeUsage bool, limitField string, limit int64) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	if limitField != "" && limit > 0 {
		m[limitField] = json.RawMessage(strconv.FormatInt(limit, 10))
	}
	if model != "" {
		mb, err := jsonsse.Encode(model)
		if err != nil {
			return nil, err
		}
		m["model"] = mb
	}
	if includeUsage {
		so := make(map[string]json.RawMessage)
		if raw, ok := m["stream_options"]; ok && len(raw) > 0 && raw[0] == '{' {
			if err := json.Unmarshal(raw, &so); err != nil {
				so = make(map[string]json.RawMessage)
			}
		}
		so["include_usage"] = json.RawMessage("true")
		sb, err := jsonsse.Encode(so)
		if err != nil {
			return nil, err
		}
		m["stream_options"] = sb
	}
	return jsonsse.Encode(m)
}

// ---- errors ----

// The envelopes the plugin writes are plugin/wire's (errorDetail above reads them).
type (
	openAIError    = wire.OpenAIError
	anthropicError = wire.AnthropicError
	codeError      = wire.CodeError
)

// errorCodeFields returns the code, type and message of an upstream error body in
// OpenAI's ({"error":{"type","code","message"}}) or Anthropic's shape; a code that is not a
// string (OpenAI sends null) is "".
func errorCodeFields(body []byte) (code, typ, msg string) {
	var env jsonsse.ErrorEnvelope
	if json.Unmarshal(body, &env) != nil || jsonsse.IsNull(env.Error) {
		return "", "", ""
	}
	var d errorCodeDetail
	if json.Unmarshal(env.Error, &d) != nil {
		return "", "", ""
	}
	c, _ := jsonsse.String(d.Code)
	return c, d.Type, d.Message
}

type errorCodeDetail struct {
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
}

// errorBody renders a client error in OpenAI's shape, or in Anthropic's when anthropic.
func errorBody(anthropic bool, typ, msg string) []byte {
	var v interface{}
	if anthropic {
		v = anthropicError{Type: "error", Error: wire.ErrorDetail{Type: typ, Message: msg}}
	} else {
		v = openAIError{Error: wire.ErrorDetail{Type: typ, Message: msg}}
	}
	b, err := jsonsse.Encode(v)
	if err != nil {
		return []byte(`{"error":{"type":"api_error","message":"Internal server error"}}`)
	}
	return b
}

// ---- usage in upstream replies ----

type usageHolder struct {
	Usage json.RawMessage `json:"usage"`
}

// sseEvent holds the usage-bearing parts of the SSE payloads of all three APIs.
type sseEvent struct {
	Type     string          `json:"type"`
	Usage    json.RawMessage `json:"usage"`
	Response *usageHolder    `json:"response"`
	Message  *usageHolder    `json:"message"`
}

// Kinds of usage found in one SSE payload.
const (
	sseNoUsage        = 0
	sseFinalUsage     = 1 // Responses terminal event, Chat chunk with usage
	sseAnthropicStart = 2 // message_start.message.usage
	sseAnthropicDelta = 3 // message_delta.usage
)

// sseUsage decodes one SSE data payload and returns the usage it carries for format.
func sseUsage(format string, payload []byte) (int, []byte) {
	var ev sseEvent
	if json.Unmarshal(payload, &ev) != nil {
		return sseNoUsage, nil
	}
	switch format {
	case usageResponses:
		if ev.Type == "response.completed" || ev.Type == "response.incomplete" || ev.Type == "response.failed" {
			if ev.Response != nil && !jsonsse.IsNull(ev.Response.Usage) {
				return sseFinalUsage, ev.Response.Usage
			}
		}
	case usageChat:
		if !jsonsse.IsNull(ev.Usage) {
			return sseFinalUsage, ev.Usage
		}
	case usageAnthropic:
		if ev.Type == "message_start" && ev.Message != nil && !jsonsse.IsNull(ev.Message.Usage) {
			return sseAnthropicStart, ev.Message.Usage
		}
		if ev.Type == "message_delta" && !jsonsse.IsNull(ev.Usage) {
			return sseAnthropicDelta, ev.Usage
		}
	}
	return sseNoUsage, nil
}

// mergeAnthropicUsage combines message_start's usage (input and cache tokens) with
// message_delta's (output tokens, sometimes cumulative input too) field by field: a value
// present in the later object overwrites the earlier one, zeros included (the later counts
// are the cumulative ones); null counts as absent (docs/billing.md, "Usage normalisation").
func mergeAnthropicUsage(start, delta []byte) []byte {
	if len(start) == 0 {
		return delta
	}
	if len(delta) == 0 {
		return start
	}
	var m, d map[string]json.RawMessage
	if json.Unmarshal(start, &m) != nil || m == nil {
		return delta
	}
	if json.Unmarshal(delta, &d) != nil {
		return start
	}
	for k, v := range d {
		if jsonsse.IsNull(v) {
			continue
		}
		m[k] = v
	}
	merged, err := jsonsse.Encode(m)
	if err != nil {
		return start
	}
	return merged
}

// ---- error passthrough rules (POST /internal/v1/upstream-error) ----

// upstreamErrorRequest asks controlsvc whether a passthrough rule rewrites an upstream error.
type upstreamErrorRequest struct {
	GroupID  int64  `json:"group_id"`
	Platform string `json:"platform"`
	Path     string `json:"path"`
	Status   int    `json:"status"`
	Body     string `json:"body"` // the first maxErrorHead bytes of the upstream body
}

type upstreamErrorReply struct {
	Matched bool            `json:"matched"`
	Status  int             `json:"status"`
	Body    json.RawMessage `json:"body"`
}

// decodeUpstreamErrorReply returns the rule's status and client body; ok is false unless a
// rule matched and the reply is usable as it is.
func decodeUpstreamErrorReply(data []byte) (int, []byte, bool) {
	var r upstreamErrorReply
	if json.Unmarshal(data, &r) != nil || !r.Matched || r.Status < 100 || r.Status > 599 || jsonsse.IsNull(r.Body) {
		return 0, nil, false
	}
	return r.Status, []byte(r.Body), true
}

// codeErrorBody renders {"error":{"code","message"}}, the error shape of a Responses request
// answered by an Anthropic account (docs/design.md, "Conversion contract").
func codeErrorBody(code, msg string) []byte {
	b, err := jsonsse.Encode(codeError{Error: streamErrorCode{Code: code, Message: msg}})
	if err != nil {
		return []byte(`{"error":{"code":"api_error","message":"Internal server error"}}`)
	}
	return b
}
