package ledger

import (
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"

	"github.com/poolgate/poolgate/plugin/wire"
)

// Billing by estimate (docs/billing.md, "Disconnects, drains and estimates"). An attempt
// committed to the client is never free: when the plugin saw no complete usage from the
// upstream it reports usage_source "estimate", and controlsvc bills what the upstream did
// report, completing it from the request's size and the bytes relayed.

// bytesPerOutputToken is the estimate of how many bytes of the upstream's body one output
// token produced (text, with the event framing around it).
const bytesPerOutputToken = 4

// usageSource reads a report's usage_source: absent is the upstream's. An unknown value is
// billed by estimate, so that a typo in a gateway never gives an answer away. An estimate
// keeps every count the upstream reported, but may raise the output to the byte estimate:
// a complete usage under an unknown source can bill more than under "upstream", never less.
func (p *Pricer) usageSource(rep *wire.Report) string {
	switch rep.UsageSource {
	case "", store.UsageUpstream:
		return store.UsageUpstream
	case store.UsageEstimate:
		return store.UsageEstimate
	}
	p.log.Warn("unknown usage_source, billed by estimate", "request_id", rep.RequestID,
		"usage_source", truncate(rep.UsageSource, 32))
	return store.UsageEstimate
}

// billedSource is how a report is billed: its usage source, except that a 2xx answer
// without any usage is billed by estimate too: an old report (no usage_source), or one that
// says "upstream" but records no error. The plugin should have said "estimate"; the client
// got an answer, and an answer is never free. A report that says "upstream" and carries an
// error class is trusted: a 200 that keep-alives sent while the request waited, followed by
// an error event because every attempt failed, committed no answer.
func (p *Pricer) billedSource(rep *wire.Report, reported usage.Tokens) string {
	src := p.usageSource(rep)
	trusted := rep.UsageSource == store.UsageUpstream && rep.ErrorClass != ""
	if src == store.UsageUpstream && !trusted && rep.Status >= 200 && rep.Status <= 299 && !reported.Billed() {
		p.log.Warn("2xx report without usage, billed by estimate", "request_id", rep.RequestID,
			"status", rep.Status, "usage_format", rep.UsageFormat)
		return store.UsageEstimate
	}
	return src
}

// EstimateTokens completes the usage the upstream reported (possibly none) by contract 3
// of docs/design.md ("/internal/v1/reports"):
//   - input: the reported input buckets when the upstream reported any input (Anthropic's
//     message_start announces it), else the input the reservation counted for input_bytes
//     (ReservedInputTokens, the rule admission uses);
//   - output: output_bytes / 4 rounded up, at least 1 and at most the output limit the
//     reservation counted (the report's max_output_tokens, else the group's
//     default_max_output_tokens); the reported output instead when it is larger.
//
// The reported output wins only when larger because a partial count is a lower bound:
// Anthropic's message_start announces "output_tokens": 1 before any text, and its final
// count comes only with message_delta at the end of the stream, which an estimate by
// definition did not see (https://docs.anthropic.com/en/docs/build-with-claude/streaming).
// Billing that placeholder would give a cut stream's text away.
func EstimateTokens(reported usage.Tokens, rep *wire.Report, terms store.GroupTerms) usage.Tokens {
	t := reported
	if reported.Input <= 0 && reported.CacheRead <= 0 && reported.CacheCreation <= 0 {
		t.Input = ReservedInputTokens(terms.CapOutputTokens, rep.InputBytes)
	}
	b := max(rep.OutputBytes, 0)
	out := max(b/bytesPerOutputToken+min(b%bytesPerOutputToken, 1), 1)
	if limit := ReservedOutputTokens(rep.MaxOutputTokens, terms.DefaultMaxOutputTokens); limit > 0 {
		out = min(out, limit)
	}
	if out > reported.Output {
		t.Output = out // the reported reasoning, if any, stays: it is part of the output
	}
	return t
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ReservedInputTokens is the input a reservation counts for a body of inputBytes: one token
// per byte in a group that caps output (an upper bound for text), else input_bytes / 2,
// rounded up. A report billed by estimate counts the same (EstimateTokens).
func ReservedInputTokens(capOutputTokens bool, inputBytes int64) int64 {
	inputBytes = max(inputBytes, 0)
	if capOutputTokens {
		return inputBytes
	}
	return inputBytes/2 + inputBytes%2
}

// ReservedOutputTokens is the output limit a reservation counts: the request's own
// maximum, else the group's default.
func ReservedOutputTokens(maxOutputTokens, defaultMaxOutputTokens int64) int64 {
	if maxOutputTokens > 0 {
		return maxOutputTokens
	}
	return defaultMaxOutputTokens
}

// MaxModelLen bounds a requested model name (real ones are well under 100 bytes). The name
// goes into the request's completion report as it is, and a report batch over
// the internal API's body limit is refused whole, every report in it lost: unbounded, a client's names near
// the admit body's 1 MiB could make other users' reports unstorable.
const MaxModelLen = 256

// ValidModel reports whether a requested model name is at most MaxModelLen bytes without
// control characters: a NUL cannot be stored in a text column, so its report would fail its
// whole batch (500), which the plugin retries forever.
func ValidModel(m string) bool {
	if len(m) > MaxModelLen {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 0x20 || m[i] == 0x7f {
			return false
		}
	}
	return true
}
