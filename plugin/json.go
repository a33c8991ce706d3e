package plugin

// The one JSON seam of the plugin: every encoding/json call and every wire type lives here.
// encoding/json is compiled into Traefik, so decoding into narrow structs and passing bodies
// through as json.RawMessage costs about what it costs natively, while hand-written
// scanning would run interpreted (traefik-yaegi-lab.md §3, §6).

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Usage formats: how controlsvc must read a report's usage object.
const (
	usageResponses = "responses"
	usageChat      = "chat"
	usageAnthropic = "anthropic"
)

// ---- controlsvc internal API (docs/design.md) ----

// admitRequest is the body of POST /internal/v1/admit.
type admitRequest struct {
	RequestID string `json:"request_id"`
	GrantID   string `json:"grant_id"`
	APIKey    string `json:"api_key"`
	// Hedge asks for one more account slot for the grant, without waiting (hedge.go).
	Hedge   bool           `json:"hedge,omitempty"`
	Path    string         `json:"path"`
	Model   string         `json:"model"`
	Stream  bool           `json:"stream"`
	Exclude []int64        `json:"exclude"`
	Failed  *failedAttempt `json:"failed,omitempty"`
	// MaxWaitMs is the plugin's wait budget: controlsvc keeps the call in its wait queues
	// at most this long (0: not at all) and then refuses as a wait timeout.
	MaxWaitMs int64 `json:"max_wait_ms"`
	// DeadlineMs is the absolute Unix time in milliseconds at which the plugin stops
	// waiting for the answer: controlsvc stops working on the call before it.
	DeadlineMs int64 `json:"deadline_ms,omitempty"`
	// SessionHash is the hex SHA-256 of the session seed (sticky sessions, issue 3 §5).
	SessionHash string `json:"session_hash,omitempty"`
	// SessionSource is "explicit" or "content" (session.go), with SessionHash.
	SessionSource string `json:"session_source,omitempty"`
	// ServedModel, on a re-admission, is the grant's served_model (fallback.go).
	ServedModel string `json:"served_model,omitempty"`
	// The inputs of controlsvc's cost estimate (docs/billing.md, "Reserve, then settle"):
	// the size of the client's body and the output maximum it names, 0 when it names none.
	InputBytes      int64 `json:"input_bytes"`
	MaxOutputTokens int64 `json:"max_output_tokens"`
}

// failedAttempt describes the upstream attempt that made the plugin ask again. Status is 0
// for a transport error (error_class "transport").
type failedAttempt struct {
	AccountID      int64  `json:"account_id"`
	Status         int    `json:"status"`
	ErrorClass     string `json:"error_class"`
	RetryAfter     string `json:"retry_after,omitempty"`
	RatelimitReset string `json:"ratelimit_reset,omitempty"`
	// Body is the start of the failed attempt's body, for the passthrough rules; it is not
	// part of the admit request.
	Body []byte `json:"-"`
}

// grant is controlsvc's 200 answer to an admit call.
type grant struct {
	GrantID       string            `json:"grant_id"`
	RequestID     string            `json:"request_id"`
	UserID        int64             `json:"user_id"`
	APIKeyID      int64             `json:"api_key_id"`
	GroupID       int64             `json:"group_id"`
	Platform      string            `json:"platform"`
	AccountID     int64             `json:"account_id"`
	BaseURL       string            `json:"base_url"`
	Headers       map[string]string `json:"headers"`
	UpstreamModel string            `json:"upstream_model"`
	// ServedModel is the model a group's fallback serves instead of the requested one
	// (upstream_model is then set); ContextFallback: fail a context-length 400 over
	// (fallback.go).
	ServedModel     string `json:"served_model,omitempty"`
	ContextFallback bool   `json:"context_fallback,omitempty"`
	// Per-group deadline overrides (issue 3 §9); absent: the plugin's configuration, 0: none.
	FirstTokenTimeoutMs *int64 `json:"first_token_timeout_ms,omitempty"`
	StreamIdleTimeoutMs *int64 `json:"stream_idle_timeout_ms,omitempty"`
	// ResponseHeaderTimeoutMs bounds a non-streaming attempt's time to response headers
	// (issue 13 §3); absent: the plugin's responseHeaderTimeout, 0: none.
	ResponseHeaderTimeoutMs *int64 `json:"response_header_timeout_ms,omitempty"`
	// HedgeAfterMs, above 0, starts a second attempt on another account when a streaming
	// attempt has produced no semantic output after that long (issue 13 §4).
	HedgeAfterMs int64 `json:"hedge_after_ms,omitempty"`
	// Convert names the conversion the request takes to this account ("" = none;
	// "responses_to_messages": a Responses request answered by an Anthropic account).
	Convert string `json:"convert,omitempty"`
	// MaxOutputTokens, when above 0, is the output limit the body sent upstream must carry:
	// what the request's reservation covers (docs/billing.md, "Output cap").
	MaxOutputTokens int64 `json:"max_output_tokens,omitempty"`
	// ForwardBetas is the group's allowlist of beta tokens, comma-separated ("" = none);
	// absent: the default lists (headers.go). UserAgent is the group's fixed User-Agent;
	// "" = the client's.
	ForwardBetas *string `json:"forward_betas,omitempty"`
	UserAgent    string  `json:"user_agent,omitempty"`
}

// report is one completion record of POST /internal/v1/reports.
type report struct {
	GrantID       string          `json:"grant_id"`
	RequestID     string          `json:"request_id"`
	UserID        int64           `json:"user_id"`
	APIKeyID      int64           `json:"api_key_id"`
	GroupID       int64           `json:"group_id"`
	AccountID     int64           `json:"account_id"`
	Path          string          `json:"path"`
	Model         string          `json:"model"`
	UpstreamModel string          `json:"upstream_model"`
	Stream        bool            `json:"stream"`
	Status        int             `json:"status"`
	ErrorClass    string          `json:"error_class"`
	UsageFormat   string          `json:"usage_format"`
	Usage         json.RawMessage `json:"usage"`
	// UsageSource is "estimate" when the answering attempt was committed to the client and
	// its final usage was not seen (a drain that ran out, a reply without usage): controlsvc
	// then bills from the sizes below (docs/billing.md, "Disconnects, drains and estimates").
	UsageSource     string `json:"usage_source"`
	InputBytes      int64  `json:"input_bytes"`       // the client's body, as at admission
	MaxOutputTokens int64  `json:"max_output_tokens"` // the body's output maximum, as at admission
	OutputBytes     int64  `json:"output_bytes"`      // the answering attempt's body, relayed and drained
	// AdmissionMs is the time spent in admit calls, waits included; UpstreamMs the time in
	// upstream attempts (from the first send to the end, re-admissions excluded).
	AdmissionMs  int64           `json:"admission_ms"`
	UpstreamMs   int64           `json:"upstream_ms"`
	FirstTokenMs int64           `json:"first_token_ms"`
	DurationMs   int64           `json:"duration_ms"`
	Attempts     []attemptReport `json:"attempts"`
	// ServedModel echoes the grant's served_model (fallback.go); the record is priced by it.
	ServedModel string `json:"served_model,omitempty"`
	// Warnings are what a converted request could not carry over (a tool with no Claude
	// equivalent, a text format Claude has no mode for): at most 8 short strings.
	Warnings []string `json:"warnings,omitempty"`
}

// attemptReport is one upstream attempt of a request, in order.
type attemptReport struct {
	AccountID  int64  `json:"account_id"`
	Status     int    `json:"status"`
	ErrorClass string `json:"error_class"`
	// DurationMs is the attempt's latency: from sending it to the upstream's response
	// headers (or the transport error).
	DurationMs int64 `json:"duration_ms"`
	// FirstTokenMs is the time from sending the attempt to its first output reaching the
	// client; only the answering attempt has one.
	FirstTokenMs int64 `json:"first_token_ms,omitempty"`
	// Usage is an earlier attempt's own usage object (report format), when it produced
	// one before failing over: e.g. Anthropic's message_start announced the input of a
	// stream that then missed its first-token deadline. The answering attempt's usage is
	// the report's.
	Usage json.RawMessage `json:"usage,omitempty"`
	// UpstreamModel is the model this attempt's account was sent: the grant's mapped model,
	// else the requested one; controlsvc prices an earlier attempt's usage by it, as
	// accounts may map a model differently.
	UpstreamModel string `json:"upstream_model,omitempty"`
	// As in failedAttempt, for a failed attempt with an upstream response.
	RetryAfter     string `json:"retry_after,omitempty"`
	RatelimitReset string `json:"ratelimit_reset,omitempty"`
	// RetriedSameAccount: this attempt failed and the next one went to the same account,
	// on the same grant, without an admit call (retry.go).
	RetriedSameAccount bool `json:"retried_same_account,omitempty"`
	// HedgeLost: this attempt was cancelled because the other hedged attempt won.
	HedgeLost bool `json:"hedge_lost,omitempty"`
}

type reportBatch struct {
	Reports []report `json:"reports"`
	// Dropped counts the reports this gateway dropped (report_spool.go) that no
	// acknowledged batch has reported yet; omitted when 0.
	Dropped int64 `json:"dropped,omitempty"`
}

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
	// The rest of what the Responses → Messages conversion reads (convert_request.go), so
	// that a converted request needs no second decode of the whole body.
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

// decodeRequestFields decodes a valid JSON document; ok is false when it is not an object.
func decodeRequestFields(body []byte) (requestFields, bool) {
	f, err := parseRequestFields(body)
	return f, err == nil
}

// parseRequestFields is the body's one pass: json.Unmarshal checks the whole document
// before it decodes (compiled, so it costs what it costs natively), and every field is
// raw, so an object never fails on a type. An error is a syntax error, or valid JSON that
// is not an object (validateBody tells them apart, on that path only).
func parseRequestFields(body []byte) (requestFields, error) {
	var f requestFields
	err := json.Unmarshal(body, &f)
	return f, err
}

// rawString returns the value of a JSON string; ok is false for anything else. raw comes
// from a decoded document, so it is valid JSON: a string without escapes and with valid
// UTF-8 is its bytes between the quotes, two compiled calls instead of a json.Unmarshal
// (which also replaces invalid UTF-8, hence the check).
func rawString(raw json.RawMessage) (string, bool) {
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

// maxTokenCount caps a token count read from a client body: far above any model's output,
// low enough that controlsvc's arithmetic never comes near overflowing.
const maxTokenCount = 1 << 40

// rawCount returns a JSON number as a non-negative whole count, capped at maxTokenCount;
// 0 for anything else (absent, null, negative, not a number).
func rawCount(raw json.RawMessage) int64 {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f <= 0 {
		return 0
	}
	if f >= maxTokenCount {
		return maxTokenCount
	}
	return int64(f)
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
		mb, err := encodeJSON(model)
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
		sb, err := encodeJSON(so)
		if err != nil {
			return nil, err
		}
		m["stream_options"] = sb
	}
	return encodeJSON(m)
}

// ---- errors ----

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

type openAIError struct {
	Error errorDetail `json:"error"`
}

type anthropicError struct {
	Type  string      `json:"type"`
	Error errorDetail `json:"error"`
}

// errorEnvelope reads both error shapes: OpenAI's {"error":{…}} (error may also be a plain
// string) and Anthropic's {"type":"error","error":{…}}.
type errorEnvelope struct {
	Error json.RawMessage `json:"error"`
}

// errorFields returns the type and message of an error body, each falling back to the
// given default when absent, for turning the body into an in-stream error.
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

// errorCodeFields returns the code, type and message of an upstream error body in
// OpenAI's ({"error":{"type","code","message"}}) or Anthropic's shape; a code that is not a
// string (OpenAI sends null) is "".
func errorCodeFields(body []byte) (code, typ, msg string) {
	var env errorEnvelope
	if json.Unmarshal(body, &env) != nil || isNullRaw(env.Error) {
		return "", "", ""
	}
	var d errorCodeDetail
	if json.Unmarshal(env.Error, &d) != nil {
		return "", "", ""
	}
	c, _ := rawString(d.Code)
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
		v = anthropicError{Type: "error", Error: errorDetail{Type: typ, Message: msg}}
	} else {
		v = openAIError{Error: errorDetail{Type: typ, Message: msg}}
	}
	b, err := encodeJSON(v)
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

func isNullRaw(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
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
			if ev.Response != nil && !isNullRaw(ev.Response.Usage) {
				return sseFinalUsage, ev.Response.Usage
			}
		}
	case usageChat:
		if !isNullRaw(ev.Usage) {
			return sseFinalUsage, ev.Usage
		}
	case usageAnthropic:
		if ev.Type == "message_start" && ev.Message != nil && !isNullRaw(ev.Message.Usage) {
			return sseAnthropicStart, ev.Message.Usage
		}
		if ev.Type == "message_delta" && !isNullRaw(ev.Usage) {
			return sseAnthropicDelta, ev.Usage
		}
	}
	return sseNoUsage, nil
}

// mergeAnthropicUsage combines message_start's usage (input and cache tokens) with
// message_delta's (output tokens, sometimes cumulative input too) field by field: a value
// present in the later object overwrites the earlier one, zeros included (the later counts
// are the cumulative ones); null counts as absent (issue 4 §5).
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
		if isNullRaw(v) {
			continue
		}
		m[k] = v
	}
	merged, err := encodeJSON(m)
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
	if json.Unmarshal(data, &r) != nil || !r.Matched || r.Status < 100 || r.Status > 599 || isNullRaw(r.Body) {
		return 0, nil, false
	}
	return r.Status, []byte(r.Body), true
}

// codeErrorBody renders {"error":{"code","message"}}, the error shape of a Responses request
// answered by an Anthropic account (issue 5 §5).
func codeErrorBody(code, msg string) []byte {
	b, err := encodeJSON(codeError{Error: streamErrorCode{Code: code, Message: msg}})
	if err != nil {
		return []byte(`{"error":{"code":"api_error","message":"Internal server error"}}`)
	}
	return b
}

type codeError struct {
	Error streamErrorCode `json:"error"`
}
