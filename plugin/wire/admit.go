package wire

// POST /internal/v1/admit (docs/design.md): the plugin's request and controlsvc's grant.
// File names in comments are the plugin's (plugin/) unless they say controlsvc.

// AdmitRequest is the body of POST /internal/v1/admit.
type AdmitRequest struct {
	RequestID string `json:"request_id"`
	GrantID   string `json:"grant_id"`
	APIKey    string `json:"api_key"`
	// Hedge asks for one more account slot for the grant, without waiting (plugin
	// hedge.go; controlsvc admission hedge.go).
	Hedge   bool           `json:"hedge,omitempty"`
	Path    string         `json:"path"`
	Model   string         `json:"model"`
	Stream  bool           `json:"stream"`
	Exclude []int64        `json:"exclude"`
	Failed  *FailedAttempt `json:"failed,omitempty"`
	// MaxWaitMs is the plugin's wait budget: controlsvc keeps the call in its wait queues
	// at most this long (0: not at all) and then refuses as a wait timeout.
	MaxWaitMs int64 `json:"max_wait_ms"`
	// DeadlineMs is the absolute Unix time in milliseconds at which the plugin stops
	// waiting for the answer: controlsvc stops working on the call before it.
	DeadlineMs int64 `json:"deadline_ms,omitempty"`
	// SessionHash is the hex SHA-256 of the session seed (docs/design.md, "Sticky sessions").
	SessionHash string `json:"session_hash,omitempty"`
	// SessionSource is "explicit" or "content" (plugin session.go), with SessionHash.
	SessionSource string `json:"session_source,omitempty"`
	// ServedModel, on a re-admission, is the grant's served_model (plugin fallback.go).
	ServedModel string `json:"served_model,omitempty"`
	// The inputs of controlsvc's cost estimate (docs/billing.md, "Reserve, then settle"):
	// the size of the client's body and the output maximum it names, 0 when it names none.
	InputBytes      int64 `json:"input_bytes"`
	MaxOutputTokens int64 `json:"max_output_tokens"`
}

// FailedAttempt describes the upstream attempt that made the plugin ask again. Status is 0
// for a transport error (error_class "transport").
type FailedAttempt struct {
	AccountID      int64  `json:"account_id"`
	Status         int    `json:"status"`
	ErrorClass     string `json:"error_class"`
	RetryAfter     string `json:"retry_after,omitempty"`
	RatelimitReset string `json:"ratelimit_reset,omitempty"`
	// Body is the plugin's own: the start of the failed attempt's body, for its passthrough
	// rules; it is not part of the admit request.
	Body []byte `json:"-"`
}

// Grant is controlsvc's 200 answer to an admit call (controlsvc admission admit.go builds it).
type Grant struct {
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
	// (plugin fallback.go).
	ServedModel     string `json:"served_model,omitempty"`
	ContextFallback bool   `json:"context_fallback,omitempty"`
	// Per-group deadline overrides (docs/design.md, "Timeouts"); absent: the plugin's
	// configuration, 0: none.
	FirstTokenTimeoutMs *int64 `json:"first_token_timeout_ms,omitempty"`
	StreamIdleTimeoutMs *int64 `json:"stream_idle_timeout_ms,omitempty"`
	// ResponseHeaderTimeoutMs bounds a non-streaming attempt's time to response headers
	// (docs/design.md, "Timeouts"); absent: the plugin's responseHeaderTimeout, 0: none.
	ResponseHeaderTimeoutMs *int64 `json:"response_header_timeout_ms,omitempty"`
	// HedgeAfterMs, above 0, starts a second attempt on another account when a streaming
	// attempt has produced no semantic output after that long (docs/design.md, "Hedged
	// first token").
	HedgeAfterMs int64 `json:"hedge_after_ms,omitempty"`
	// Convert names the conversion the request takes to this account ("" = none;
	// "responses_to_messages": a Responses request answered by an Anthropic account).
	Convert string `json:"convert,omitempty"`
	// MaxOutputTokens, when above 0, is the output limit the body sent upstream must carry:
	// what the request's reservation covers (docs/billing.md, "Output cap").
	MaxOutputTokens int64 `json:"max_output_tokens,omitempty"`
	// ForwardBetas is the group's allowlist of beta tokens, comma-separated ("" = none);
	// absent: the default lists (plugin headers.go). UserAgent is the group's fixed User-Agent;
	// "" = the client's.
	ForwardBetas *string `json:"forward_betas,omitempty"`
	UserAgent    string  `json:"user_agent,omitempty"`
}
