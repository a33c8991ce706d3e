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
	// DefaultRateLimitCooldown applies to a 429 without a usable reset header, unless
	// Config.RateLimitCooldown says otherwise.
	DefaultRateLimitCooldown = 5 * time.Second
	// MaxRateLimitCooldown caps any reset an upstream announces, and the configured default.
	MaxRateLimitCooldown = 2 * time.Hour
	// overloadCooldown follows a 529 (Anthropic "overloaded_error").
	overloadCooldown = 10 * time.Minute
	// pauseCooldown follows a credential 401/403 or a transport error: long enough to stop hammering a
	// broken credential or host, short enough to recover without an operator.
	pauseCooldown = 10 * time.Minute
	// modelBlockCooldown follows an upstream "model not found": the account is out for that
	// model only.
	modelBlockCooldown = 30 * time.Minute
)

// The 403 rule (sub2api-behaviour.md §5.2): a 403 pauses the account, and the third within
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

// Error classes of the plugin that mark an account.
const (
	// errorClassTransport: no upstream response at all (connection refused, DNS failure, TLS
	// failure …).
	errorClassTransport = "transport"
	// errorClassModelNotFound: the upstream answered that it does not know the model.
	errorClassModelNotFound = "model_not_found"
	// errorClassCredential: a 401/403 the provider attributes to the account's credential
	// (the plugin's credentialFault); the only auth failure that pauses an account.
	errorClassCredential = "credential"
)

// statusOverloaded is Anthropic's non-standard "overloaded" status.
const statusOverloaded = 529

// failure is one failed upstream attempt, as the plugin reports it.
type failure struct {
	AccountID      int64  `json:"account_id"`
	Status         int    `json:"status"`
	ErrorClass     string `json:"error_class"`
	RetryAfter     string `json:"retry_after,omitempty"`
	RatelimitReset string `json:"ratelimit_reset,omitempty"`
	// Model is the upstream model of the attempt, filled in by controlsvc (never taken from
	// the plugin's JSON) for a model_not_found failure.
	Model string `json:"-"`
}

// markFor decides how a failed attempt marks its account; ok is false when it does not
// (other 5xx only exclude the account for the current request). cooldown is the rest of a
// 429 that announces no reset.
func markFor(f failure, now time.Time, cooldown time.Duration) (m store.AccountMark, ok bool) {
	switch {
	case f.ErrorClass == errorClassTransport:
		return store.AccountMark{Kind: store.MarkPaused, Until: now.Add(pauseCooldown), Reason: "upstream transport error"}, true
	case f.ErrorClass == errorClassModelNotFound:
		if f.Model == "" {
			return store.AccountMark{}, false
		}
		return store.AccountMark{Kind: store.MarkModelBlocked, Until: now.Add(modelBlockCooldown), Model: f.Model}, true
	case f.Status == http.StatusTooManyRequests:
		return store.AccountMark{Kind: store.MarkRateLimited,
			Until: now.Add(rateLimitCooldown(f.RetryAfter, f.RatelimitReset, now, cooldown))}, true
	case f.Status == statusOverloaded:
		return store.AccountMark{Kind: store.MarkOverloaded, Until: now.Add(overloadCooldown)}, true
	case f.ErrorClass != errorClassCredential && (f.Status == http.StatusUnauthorized || f.Status == http.StatusForbidden):
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

// rateLimitCooldown is how long a 429'd account rests: the longest wait that Retry-After
// (RFC 9110 §10.2.3: seconds or an HTTP date) and the reset headers announce, else
// cooldown; at most MaxRateLimitCooldown. resets is the plugin's comma-separated list of
// the reset headers present: OpenAI's x-ratelimit-reset-* durations ("6s", "1m30s", "20ms";
// https://platform.openai.com/docs/guides/rate-limits) and Anthropic's
// anthropic-ratelimit-*-reset RFC 3339 times
// (https://docs.anthropic.com/en/api/rate-limits#response-headers). The longest wins:
// the response does not say which limit was hit, and retrying too early only earns
// another 429.
func rateLimitCooldown(retryAfter, resets string, now time.Time, cooldown time.Duration) time.Duration {
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

// markFailedAttempt settles the health of the account of a failed attempt at
// re-admission; model is the model the client asked for. A model_not_found failure blocks
// the model the account was sent, after its model mapping.
func (s *Service) markFailedAttempt(ctx context.Context, key store.KeyAuth, model string, f failure) {
	if f.ErrorClass == errorClassModelNotFound {
		f.Model = s.upstreamModelOf(ctx, key, f.AccountID, model)
	}
	s.markAccount(ctx, f)
}

// upstreamModelOf is the model the account is sent for a request of model: its mapping's
// target, or model itself when the mapping passes it through or the account is unknown.
func (s *Service) upstreamModelOf(ctx context.Context, key store.KeyAuth, accountID int64, model string) string {
	accounts, err := s.groupAccounts(ctx, key.GroupID, key.Platform)
	if err != nil {
		s.log.Warn("resolving the failed account's model", "account_id", accountID, "error", err)
		return model
	}
	for i := range accounts {
		if accounts[i].ID != accountID {
			continue
		}
		if up, ok := accounts[i].mapping.Resolve(model); ok && up != "" {
			return up
		}
		break
	}
	return model
}

// upstreamOr is the upstream model of a report: the grant's, or the client's model when the
// grant sent it unchanged.
func upstreamOr(upstream, model string) string {
	if upstream != "" {
		return upstream
	}
	return model
}

// markAccount applies the mark of a failed attempt, if any, and drops the account cache so
// this process stops choosing the account at once (other instances follow within cacheTTL).
// It runs detached from the request: a client that goes away must not undo a mark.
func (s *Service) markAccount(ctx context.Context, f failure) {
	m, ok := markFor(f, time.Now(), s.rateLimitCooldown)
	if !ok || f.AccountID <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	res, err := s.store.MarkAccount(ctx, f.AccountID, m)
	if err != nil {
		s.log.Error("marking account", "account_id", f.AccountID, "status", f.Status, "error", err)
		return
	}
	s.accounts.Invalidate()
	s.log.Info("account marked", "account_id", f.AccountID, "status", f.Status,
		"error_class", f.ErrorClass, "model", f.Model, "until", m.Until)
	if res.Disabled {
		s.log.Warn("account disabled", "account_id", f.AccountID, "reason", m.Strikes.Reason)
	}
}

// AccountsChanged drops this process's cached account lists, so that an admin change of an
// account (its state cleared, its settings edited) reaches selection at once here; other
// instances follow within cacheTTL.
func (s *Service) AccountsChanged() {
	s.accounts.Invalidate()
}
