package health

import (
	"testing"
	"time"
)

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
		d := RateLimitCooldown(retryAfter, resets, now, time.Duration(cooldown))
		if d <= 0 || d > MaxRateLimitCooldown {
			t.Fatalf("cooldown %v for Retry-After %q, resets %q", d, retryAfter, resets)
		}
	})
}
