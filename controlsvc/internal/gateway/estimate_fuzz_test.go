package gateway

import (
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

// FuzzEstimateTokens: a report billed by estimate (docs/billing.md) never bills negative
// tokens; its output is at least 1, at least the upstream's partial count, and at most the
// limit the reservation counted unless the upstream itself reported more; its input is the
// reservation's estimate when the upstream reported none.
func FuzzEstimateTokens(f *testing.F) {
	f.Add(int64(0), int64(0), int64(1000), int64(0), int64(400), int64(4096), false)
	f.Add(int64(7), int64(1), int64(-1), int64(1<<40), int64(1<<62), int64(0), true)
	f.Add(int64(-5), int64(-5), int64(1<<63-1), int64(-1), int64(1<<63-1), int64(-1<<63), true)
	f.Fuzz(func(t *testing.T, repIn, repOut, inputBytes, maxOut, outputBytes, defMax int64, capOut bool) {
		reported := usage.Tokens{Input: max(repIn, 0), Output: max(repOut, 0)}
		rep := &report{InputBytes: inputBytes, MaxOutputTokens: maxOut, OutputBytes: outputBytes}
		terms := store.GroupTerms{DefaultMaxOutputTokens: defMax, CapOutputTokens: capOut}
		got := estimateTokens(reported, rep, terms)
		if got.Input < 0 || got.Output < 1 || got.CacheRead < 0 || got.CacheCreation < 0 {
			t.Fatalf("estimate %+v", got)
		}
		if got.Output < reported.Output {
			t.Fatalf("estimate %d below the reported output %d", got.Output, reported.Output)
		}
		if limit := reservedOutputTokens(maxOut, defMax); limit > 0 && got.Output > max(limit, reported.Output, 1) {
			t.Fatalf("estimate %d above the limit %d", got.Output, limit)
		}
		if reported.Input == 0 && got.Input != reservedInputTokens(capOut, inputBytes) {
			t.Fatalf("input %d, the reservation counted %d", got.Input, reservedInputTokens(capOut, inputBytes))
		}
	})
}

// FuzzRateLimitCooldown: whatever Retry-After and reset headers an upstream sends, a 429'd
// account rests a positive time of at most MaxRateLimitCooldown.
func FuzzRateLimitCooldown(f *testing.F) {
	for _, s := range []string{"", "5", "1.5", "-3", "NaN", "1e308", "Wed, 21 Oct 2015 07:28:00 GMT", "6s,1m30s", "2026-12-07T12:00:00Z", "9999999999", "2562048h"} {
		f.Add(s, s, int64(0))
	}
	now := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, retryAfter, resets string, cooldown int64) {
		if len(retryAfter)+len(resets) > 1<<14 {
			return
		}
		d := rateLimitCooldown(retryAfter, resets, now, time.Duration(cooldown))
		if d <= 0 || d > MaxRateLimitCooldown {
			t.Fatalf("cooldown %v for Retry-After %q, resets %q", d, retryAfter, resets)
		}
	})
}
