// Package health owns what a failed or answered upstream attempt means for its account:
// account-wide marks (rate limits, pauses, model blocks, the 403 rule), the (account, model)
// circuit breakers and dial back-off, and the classification of the plugin's error classes
// behind them (docs/design.md, "Health model").
package health

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Account-wide pauses (docs/design.md, "Health model"): only for faults that are the
// account's. Everything else an upstream does wrong counts towards the breaker of
// (account, model) (breakers.go).
const (
	// DefaultRateLimitCooldown applies to a 429 without a usable reset header, unless
	// the gateway's Config.RateLimitCooldown says otherwise.
	DefaultRateLimitCooldown = 5 * time.Second
	// MaxRateLimitCooldown caps any reset an upstream announces, and the configured default.
	MaxRateLimitCooldown = 2 * time.Hour
	// pauseCooldown follows a credential 401/403: long enough to stop hammering a broken
	// credential, short enough to recover without an operator.
	pauseCooldown = 10 * time.Minute
	// quotaCooldown follows an account out of credit: it stays so until someone pays, which
	// retrying every few seconds does not speed up.
	quotaCooldown = time.Hour
	// dialBackoffBase is the pause after an account's first dial failure in a row; it
	// doubles per consecutive one up to dialBackoffCap, and an answer resets it.
	dialBackoffBase = 5 * time.Second
	dialBackoffCap  = 5 * time.Minute
	// modelBlockCooldown follows an upstream "model not found": the account is out for that
	// model only.
	modelBlockCooldown = 30 * time.Minute
)

// Pause reasons shown in the account's state.
const (
	reasonQuota       = "insufficient_quota"
	reasonUnreachable = "upstream unreachable"
)

// The 403 rule (docs/design.md, "Health model"): a 403 pauses the account, and the third within
// 3 h disables it until an operator looks. 403s spread wider apart only pause.
const (
	forbiddenWindow        = 3 * time.Hour
	forbiddenLimit         = 3
	forbiddenDisableReason = "upstream 403 three times within 3h"
)

// unixTimeFloor tells a reset given as a Unix time (seconds) from one given as seconds to
// wait: no upstream announces a wait of 30 years. unixTimeCeiling (year 5138) keeps the conversion to int64 seconds sane.
const (
	unixTimeFloor   = 1e9
	unixTimeCeiling = 1e11
)

// Error classes of the plugin that mark an account or count towards its breaker
// (docs/design.md, "Health model").
const (
	// ErrorClassDial: the TCP connect or TLS handshake failed; nothing was sent.
	ErrorClassDial = "dial"
	// ErrorClassTransport: the request was sent and the connection failed (reset, EOF).
	ErrorClassTransport = "transport"
	// ErrorClassQuota: the upstream says the account is out of credit.
	ErrorClassQuota = "quota"
	// ErrorClassModelNotFound: the upstream answered that it does not know the model.
	ErrorClassModelNotFound = "model_not_found"
	// ErrorClassCredential: a 401/403 the provider attributes to the account's credential
	// (the plugin's credentialFault); the only auth failure that pauses an account.
	ErrorClassCredential = "credential"
	// ErrorClassUpstreamStatus and ErrorClassInStreamError carry the upstream's status (the
	// one an in-stream error event implies).
	ErrorClassUpstreamStatus = "upstream_status"
	ErrorClassInStreamError  = "in_stream_error"
)

// Failure is one failed upstream attempt, as the plugin reports it.
type Failure struct {
	AccountID      int64  `json:"account_id"`
	Status         int    `json:"status"`
	ErrorClass     string `json:"error_class"`
	RetryAfter     string `json:"retry_after,omitempty"`
	RatelimitReset string `json:"ratelimit_reset,omitempty"`
	// Model is the upstream model of the attempt, filled in by controlsvc (never taken from
	// the plugin's JSON).
	Model string `json:"-"`
	// DialStreak is the account's count of consecutive dial failures, this one included,
	// filled in by controlsvc for a dial failure.
	DialStreak int64 `json:"-"`
}

// MarkFor decides how a failed attempt marks its account as a whole; ok is false when it
// does not (a transport error, a timeout or a 5xx only excludes the account for the
// current request and counts towards its breaker, BreakerFailure). cooldown is the rest of
// a 429 that announces no reset.
func MarkFor(f Failure, now time.Time, cooldown time.Duration) (m store.AccountMark, ok bool) {
	switch {
	case f.ErrorClass == ErrorClassDial:
		return store.AccountMark{Kind: store.MarkPaused, Until: now.Add(DialBackoff(f.DialStreak)), Reason: reasonUnreachable}, true
	case f.ErrorClass == ErrorClassQuota:
		return store.AccountMark{Kind: store.MarkPaused, Until: now.Add(quotaCooldown), Reason: reasonQuota}, true
	case f.ErrorClass == ErrorClassModelNotFound:
		if f.Model == "" {
			return store.AccountMark{}, false
		}
		return store.AccountMark{Kind: store.MarkModelBlocked, Until: now.Add(modelBlockCooldown), Model: f.Model}, true
	case f.ErrorClass == ErrorClassTransport:
		return store.AccountMark{}, false // even one that carries a status
	case f.Status == http.StatusTooManyRequests:
		return store.AccountMark{Kind: store.MarkRateLimited,
			Until: now.Add(RateLimitCooldown(f.RetryAfter, f.RatelimitReset, now, cooldown))}, true
	case f.ErrorClass != ErrorClassCredential && (f.Status == http.StatusUnauthorized || f.Status == http.StatusForbidden):
		// A 401/403 the provider does not attribute to the credential can be caused by the
		// client (a beta, a model, an image URL): it fails the request and marks nothing.
		return store.AccountMark{}, false
	case f.Status == http.StatusUnauthorized:
		return store.AccountMark{Kind: store.MarkPaused, Until: now.Add(pauseCooldown), Reason: "upstream 401"}, true
	case f.Status == http.StatusForbidden:
		return store.AccountMark{Kind: store.MarkForbidden, Until: now.Add(pauseCooldown), Reason: "upstream 403",
			Strikes: store.StrikeRule{At: now, Window: forbiddenWindow, Limit: forbiddenLimit, Reason: forbiddenDisableReason}}, true
	}
	return store.AccountMark{}, false
}

// RateLimitCooldown is how long a 429'd account rests: the longest wait that Retry-After
// (RFC 9110 §10.2.3: seconds or an HTTP date) and the reset headers announce, else
// cooldown; at most MaxRateLimitCooldown. resets is the plugin's comma-separated list of
// the reset headers present: OpenAI's x-ratelimit-reset-* durations ("6s", "1m30s", "20ms";
// https://platform.openai.com/docs/guides/rate-limits) and Anthropic's
// anthropic-ratelimit-*-reset RFC 3339 times
// (https://docs.anthropic.com/en/api/rate-limits#response-headers). The longest wins:
// the response does not say which limit was hit, and retrying too early only earns
// another 429.
func RateLimitCooldown(retryAfter, resets string, now time.Time, cooldown time.Duration) time.Duration {
	d := parseRetryAfter(retryAfter, now)
	for _, v := range strings.Split(resets, ",") {
		d = max(d, parseReset(v, now))
	}
	if d <= 0 {
		d = cooldown
	}
	if d <= 0 {
		d = DefaultRateLimitCooldown
	}
	return min(d, MaxRateLimitCooldown)
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

// parseReset reads one reset header value: a Go-style duration, an RFC 3339 time, or a
// number, which is seconds to wait or, from unixTimeFloor on, a Unix time.
func parseReset(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.Sub(now)
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs >= unixTimeFloor {
			if secs > unixTimeCeiling {
				return 0 // not a time we can read
			}
			return time.Unix(int64(secs), 0).Sub(now)
		}
		return secondsDuration(secs)
	}
	return 0
}

func secondsDuration(secs float64) time.Duration {
	if secs <= 0 || secs != secs { // NaN
		return 0
	}
	if secs > MaxRateLimitCooldown.Seconds() {
		return MaxRateLimitCooldown
	}
	return time.Duration(secs * float64(time.Second))
}

// UpstreamOr is the upstream model of a report: the grant's, or the client's model when the
// grant sent it unchanged.
func UpstreamOr(upstream, model string) string {
	if upstream != "" {
		return upstream
	}
	return model
}
