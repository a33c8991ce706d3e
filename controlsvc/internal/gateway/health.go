package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Cooldowns after upstream failures (sub2api-behaviour.md §5.2 and §3.8).
const (
	// defaultRateLimitCooldown applies to a 429 without a usable reset header.
	defaultRateLimitCooldown = 5 * time.Second
	// maxRateLimitCooldown caps any reset an upstream announces.
	maxRateLimitCooldown = 2 * time.Hour
	// overloadCooldown follows a 529 (Anthropic "overloaded_error").
	overloadCooldown = 10 * time.Minute
	// pauseCooldown follows a 401/403 or a transport error: long enough to stop hammering a
	// broken credential or host, short enough to recover without an operator.
	pauseCooldown = 10 * time.Minute
)

// errorClassTransport is the plugin's error_class for a request that never got an upstream
// response (connection refused, DNS failure, TLS failure …).
const errorClassTransport = "transport"

// statusOverloaded is Anthropic's non-standard "overloaded" status.
const statusOverloaded = 529

// failure is one failed upstream attempt, as the plugin reports it.
type failure struct {
	AccountID      int64  `json:"account_id"`
	Status         int    `json:"status"`
	ErrorClass     string `json:"error_class"`
	RetryAfter     string `json:"retry_after,omitempty"`
	RatelimitReset string `json:"ratelimit_reset,omitempty"`
}

// markFor decides how a failed attempt marks its account; ok is false when it does not
// (other 5xx only exclude the account for the current request).
func markFor(f failure, now time.Time) (m store.AccountMark, ok bool) {
	switch {
	case f.ErrorClass == errorClassTransport:
		return store.AccountMark{Kind: store.MarkPaused, Until: now.Add(pauseCooldown), Reason: "upstream transport error"}, true
	case f.Status == http.StatusTooManyRequests:
		return store.AccountMark{Kind: store.MarkRateLimited, Until: now.Add(rateLimitCooldown(f.RetryAfter, f.RatelimitReset, now))}, true
	case f.Status == statusOverloaded:
		return store.AccountMark{Kind: store.MarkOverloaded, Until: now.Add(overloadCooldown)}, true
	case f.Status == http.StatusUnauthorized || f.Status == http.StatusForbidden:
		return store.AccountMark{Kind: store.MarkPaused, Until: now.Add(pauseCooldown), Reason: "upstream " + strconv.Itoa(f.Status)}, true
	}
	return store.AccountMark{}, false
}

// rateLimitCooldown is how long a 429'd account rests: the longer of what Retry-After
// (RFC 9110 §10.2.3: seconds or an HTTP date) and OpenAI's x-ratelimit-reset-* durations
// ("6s", "1m30s", "20ms"; https://platform.openai.com/docs/guides/rate-limits) announce,
// else defaultRateLimitCooldown; at most maxRateLimitCooldown.
func rateLimitCooldown(retryAfter, ratelimitReset string, now time.Time) time.Duration {
	d := max(parseRetryAfter(retryAfter, now), parseResetDuration(ratelimitReset))
	if d <= 0 {
		return defaultRateLimitCooldown
	}
	return min(d, maxRateLimitCooldown)
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return secondsDuration(secs)
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}

// parseResetDuration reads an x-ratelimit-reset-* value: a Go-style duration, or bare
// seconds.
func parseResetDuration(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return secondsDuration(secs)
	}
	return 0
}

func secondsDuration(secs float64) time.Duration {
	if secs <= 0 || secs != secs { // NaN
		return 0
	}
	if secs > maxRateLimitCooldown.Seconds() {
		return maxRateLimitCooldown
	}
	return time.Duration(secs * float64(time.Second))
}

// markAccount applies the mark of a failed attempt, if any, and drops the account cache so
// this process stops choosing the account at once (other instances follow within cacheTTL).
// It runs detached from the request: a client that goes away must not undo a mark.
func (s *Service) markAccount(ctx context.Context, f failure) {
	m, ok := markFor(f, time.Now())
	if !ok || f.AccountID <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	if err := s.store.MarkAccount(ctx, f.AccountID, m); err != nil {
		s.log.Error("marking account", "account_id", f.AccountID, "status", f.Status, "error", err)
		return
	}
	s.accounts.invalidate()
	s.log.Info("account marked", "account_id", f.AccountID, "status", f.Status,
		"error_class", f.ErrorClass, "until", m.Until)
}
