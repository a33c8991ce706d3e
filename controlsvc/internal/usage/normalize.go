// Package usage turns an upstream's usage object into poolgate's token buckets and prices
// them. Input tokens are always exclusive of cache tokens, whatever the upstream's
// convention: OpenAI's input_tokens/prompt_tokens include cached_tokens, Anthropic's
// input_tokens do not (docs/design.md, "/internal/v1/reports"; docs/billing.md).
package usage

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
)

// Usage formats, as sent by the plugin in a report's usage_format.
const (
	FormatResponses = "responses" // OpenAI Responses API
	FormatChat      = "chat"      // OpenAI Chat Completions API
	FormatAnthropic = "anthropic" // Anthropic Messages API
)

// Errors of Normalize.
var (
	ErrUnknownFormat = errors.New("unknown usage format")
	ErrInvalidUsage  = errors.New("usage is not a JSON object")
)

// Tokens are the token buckets of one request, the one internal shape of every upstream's
// usage. Input, Output, CacheRead and CacheCreation are billed; Reasoning is informational:
// it is part of Output (OpenAI counts reasoning tokens inside output_tokens and bills them
// as output), never billed on its own.
type Tokens struct {
	Input         int64 // exclusive of cache reads and cache writes
	Output        int64 // including Reasoning
	CacheRead     int64
	CacheCreation int64
	// CacheCreation1h is the part of CacheCreation written with a 1-hour TTL (Anthropic's
	// usage.cache_creation.ephemeral_1h_input_tokens).
	CacheCreation1h int64
	Reasoning       int64 // part of Output
}

// Normalize reads the raw usage object of the given format. A missing or null usage is
// zero tokens, not an error (failed and aborted requests usually have none).
func Normalize(format string, raw []byte) (Tokens, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return Tokens{}, nil
	}
	if !gjson.ValidBytes(raw) {
		return Tokens{}, ErrInvalidUsage
	}
	r := gjson.ParseBytes(raw)
	if !r.IsObject() {
		return Tokens{}, ErrInvalidUsage
	}
	switch format {
	case FormatResponses:
		// https://platform.openai.com/docs/api-reference/responses/object#responses/object-usage
		cached := count(r, "input_tokens_details.cached_tokens")
		return Tokens{
			Input:     nonNegative(count(r, "input_tokens") - cached),
			Output:    count(r, "output_tokens"),
			CacheRead: cached,
			Reasoning: count(r, "output_tokens_details.reasoning_tokens"),
		}, nil
	case FormatChat:
		// https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage
		cached := count(r, "prompt_tokens_details.cached_tokens")
		return Tokens{
			Input:     nonNegative(count(r, "prompt_tokens") - cached),
			Output:    count(r, "completion_tokens"),
			CacheRead: cached,
			Reasoning: count(r, "completion_tokens_details.reasoning_tokens"),
		}, nil
	case FormatAnthropic:
		// https://docs.anthropic.com/en/api/messages#response-usage: input_tokens already
		// excludes cache_read_input_tokens and cache_creation_input_tokens. Extended
		// thinking is billed as output and not reported apart: Reasoning stays 0.
		return Tokens{
			Input:           count(r, "input_tokens"),
			Output:          count(r, "output_tokens"),
			CacheRead:       count(r, "cache_read_input_tokens"),
			CacheCreation:   count(r, "cache_creation_input_tokens"),
			CacheCreation1h: count(r, "cache_creation.ephemeral_1h_input_tokens"),
		}, nil
	default:
		return Tokens{}, fmt.Errorf("%w %q", ErrUnknownFormat, format)
	}
}

// Billed reports whether any billed bucket is non-zero (Reasoning is inside Output).
func (t Tokens) Billed() bool {
	return t.Input != 0 || t.Output != 0 || t.CacheRead != 0 || t.CacheCreation != 0
}

// count reads a token count; absent, non-numeric or negative values count as 0.
func count(r gjson.Result, path string) int64 {
	v := r.Get(path)
	if v.Type != gjson.Number {
		return 0
	}
	return nonNegative(v.Int())
}

func nonNegative(n int64) int64 {
	if n < 0 {
		return 0
	}
	return n
}
