package wire

import "encoding/json"

// Usage formats: how controlsvc must read a report's usage object.
const (
	UsageResponses = "responses"
	UsageChat      = "chat"
	UsageAnthropic = "anthropic"
)

// Report is one completion record of POST /internal/v1/reports.
type Report struct {
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
	AdmissionMs  int64     `json:"admission_ms"`
	UpstreamMs   int64     `json:"upstream_ms"`
	FirstTokenMs int64     `json:"first_token_ms"`
	DurationMs   int64     `json:"duration_ms"`
	Attempts     []Attempt `json:"attempts"`
	// ServedModel echoes the Grant's served_model (plugin fallback.go); the record is priced by it.
	ServedModel string `json:"served_model,omitempty"`
	// Warnings are what a converted request could not carry over (a tool with no Claude
	// equivalent, a text format Claude has no mode for): at most 8 short strings.
	Warnings []string `json:"warnings,omitempty"`
}

// Attempt is one upstream attempt of a request, in order.
type Attempt struct {
	AccountID  int64  `json:"account_id"`
	Status     int    `json:"status"`
	ErrorClass string `json:"error_class"`
	// DurationMs is the attempt's latency: from sending it to the upstream's response
	// headers (or the transport error).
	DurationMs int64 `json:"duration_ms"`
	// FirstTokenMs is the time from sending the attempt to its first output reaching the
	// client; only the answering attempt has one.
	FirstTokenMs int64 `json:"first_token_ms,omitempty"`
	// Usage is an earlier attempt's own usage object (Report format), when it produced
	// one before failing over: e.g. Anthropic's message_start announced the input of a
	// stream that then missed its first-token deadline. The answering attempt's usage is
	// the Report's.
	Usage json.RawMessage `json:"usage,omitempty"`
	// UpstreamModel is the model this attempt's account was sent: the Grant's mapped model,
	// else the requested one; controlsvc prices an earlier attempt's usage by it, as
	// accounts may map a model differently.
	UpstreamModel string `json:"upstream_model,omitempty"`
	// As in FailedAttempt, for a failed attempt with an upstream response.
	RetryAfter     string `json:"retry_after,omitempty"`
	RatelimitReset string `json:"ratelimit_reset,omitempty"`
	// RetriedSameAccount: this attempt failed and the next one went to the same account,
	// on the same Grant, without an admit call (plugin retry.go).
	RetriedSameAccount bool `json:"retried_same_account,omitempty"`
	// HedgeLost: this attempt was cancelled because the other hedged attempt won.
	HedgeLost bool `json:"hedge_lost,omitempty"`
}

type ReportBatch struct {
	Reports []Report `json:"reports"`
	// Dropped counts the reports this gateway dropped (plugin report_spool.go) that no
	// acknowledged batch has reported yet; omitted when 0.
	Dropped int64 `json:"dropped,omitempty"`
}
