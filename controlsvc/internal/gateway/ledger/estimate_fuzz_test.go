package ledger

import (
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"

	"github.com/poolgate/poolgate/plugin/wire"
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
		rep := &wire.Report{InputBytes: inputBytes, MaxOutputTokens: maxOut, OutputBytes: outputBytes}
		terms := store.GroupTerms{DefaultMaxOutputTokens: defMax, CapOutputTokens: capOut}
		got := EstimateTokens(reported, rep, terms)
		if got.Input < 0 || got.Output < 1 || got.CacheRead < 0 || got.CacheCreation < 0 {
			t.Fatalf("estimate %+v", got)
		}
		if got.Output < reported.Output {
			t.Fatalf("estimate %d below the reported output %d", got.Output, reported.Output)
		}
		if limit := ReservedOutputTokens(maxOut, defMax); limit > 0 && got.Output > max(limit, reported.Output, 1) {
			t.Fatalf("estimate %d above the limit %d", got.Output, limit)
		}
		if reported.Input == 0 && got.Input != ReservedInputTokens(capOut, inputBytes) {
			t.Fatalf("input %d, the reservation counted %d", got.Input, ReservedInputTokens(capOut, inputBytes))
		}
	})
}
