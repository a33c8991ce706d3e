package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Account-wide pauses (docs/design.md, "Health model"): only for faults that are the
// account's. Everything else an upstream does wrong counts towards the breaker of
// (account, model) (breakers.go).
const (
	// DefaultRateLimitCooldown applies to a 429 without a usable reset header, unless
	// Config.RateLimitCooldown says otherwise.
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

// Error classes of the plugin that mark an account or count towards its breaker
// (docs/design.md, "Health model").
const (
	// errorClassDial: the TCP connect or TLS handshake failed; nothing was sent.
	errorClassDial = "dial"
	// errorClassTransport: the request was sent and the connection failed (reset, EOF).
	errorClassTransport = "transport"
	// errorClassQuota: the upstream says the account is out of credit.
	errorClassQuota = "quota"
	// errorClassModelNotFound: the upstream answered that it does not know the model.
	errorClassModelNotFound = "model_not_found"
	// errorClassCredential: a 401/403 the provider attributes to the account's credential
	// (the plugin's credentialFault); the only auth failure that pauses an account.
	errorClassCredential = "credential"
	// errorClassUpstreamStatus and errorClassInStreamError carry the upstream's status (the
	// one an in-stream error event implies).
	errorClassUpstreamStatus = "upstream_status"
	errorClassInStreamError  = "in_stream_error"
)

// failure is one failed upstream attempt, as the plugin reports it.
type failure struct {
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

// markFor decides how a failed attempt marks its account as a whole; ok is false when it
// does not (a transport error, a timeout or a 5xx only excludes the account for the
// current request and counts towards its breaker, breakerFailure). cooldown is the rest of
// a 429 that announces no reset.
func markFor(f failure, now time.Time, cooldown time.Duration) (m store.AccountMark, ok bool) {
	switch {
	case f.ErrorClass == errorClassDial:
		return store.AccountMark{Kind: store.MarkPaused, Until: now.Add(dialBackoff(f.DialStreak)), Reason: reasonUnreachable}, true
	case f.ErrorClass == errorClassQuota:
		return store.AccountMark{Kind: store.MarkPaused, Until: now.Add(quotaCooldown), Reason: reasonQuota}, true
	case f.ErrorClass == errorClassModelNotFound:
		if f.Model == "" {
			return store.AccountMark{}, false
		}
		return store.AccountMark{Kind: store.MarkModelBlocked, Until: now.Add(modelBlockCooldown), Model: f.Model}, true
	case f.ErrorClass == errorClassTransport:
		return store.AccountMark{}, false // even one that carries a status
	case f.Status == http.StatusTooManyRequests:
		return store.AccountMark{Kind: store.MarkRateLimited,
			Until: now.Add(rateLimitCooldown(f.RetryAfter, f.RatelimitReset, now, cooldown))}, true
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

// markFailedAttempt settles the health of the account of a failed attempt of grantID at
// re-admission and reports whether it opened the attempt's breaker; model is the model the
// client asked for, after the group's mapping. The failure concerns the model the account
// was sent, after its own mapping.
func (s *Service) markFailedAttempt(ctx context.Context, key store.KeyAuth, model, grantID string, f failure) bool {
	f.Model = s.upstreamModelOf(ctx, key, f.AccountID, model)
	opened := s.settleFailure(ctx, f, grantID, s.breakerSettings(key))
	_, marks := markFor(f, time.Now(), s.rateLimitCooldown)
	_, counts := breakerFailure(f)
	if (marks || counts || f.ErrorClass == errorClassDial) && f.AccountID > 0 && grantID != "" {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		if err := s.breakers.MarkSettled(mctx, f.AccountID, grantID); err != nil {
			s.log.Warn("remembering settled failure", "account_id", f.AccountID, "error", err)
		}
	}
	return opened
}

// settleReportedFailure settles a report's failed last attempt, unless its re-admission
// did already (a request that found no other account reports the failure it re-admitted
// with), and reports whether it opened the attempt's breaker.
func (s *Service) settleReportedFailure(ctx context.Context, f failure, grantID string, bs breaker.Settings) bool {
	if grantID != "" {
		tctx, cancel := context.WithTimeout(ctx, loadTimeout)
		settled, err := s.breakers.TakeSettled(tctx, f.AccountID, grantID)
		cancel()
		if err != nil {
			s.log.Warn("reading settled failure", "account_id", f.AccountID, "error", err)
		}
		if settled {
			return false
		}
	}
	return s.settleFailure(ctx, f, grantID, bs)
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

// settleFailure applies what a failed attempt of grantID means for its account: an
// account-wide mark (markFor), a failure of its (account, model) breaker (breakerFailure),
// or nothing; opened is true when the failure opened the breaker. It runs detached from the
// request: a client that goes away must not undo a mark.
func (s *Service) settleFailure(ctx context.Context, f failure, grantID string, bs breaker.Settings) (opened bool) {
	if f.AccountID <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	if f.ErrorClass == errorClassDial {
		n, err := s.breakers.DialFailure(ctx, f.AccountID)
		if err != nil {
			s.log.Warn("counting dial failure", "account_id", f.AccountID, "error", err)
		}
		f.DialStreak = n // 0 on an error: the first step
	}
	s.markAccount(ctx, f)
	if reason, ok := breakerFailure(f); ok && f.Model != "" {
		return s.failBreaker(ctx, f, reason, grantID, bs)
	}
	return false
}

// markAccount applies the account-wide mark of a failed attempt, if any, and publishes the
// account's change, so that every instance stops choosing the account at once.
func (s *Service) markAccount(ctx context.Context, f failure) {
	m, ok := markFor(f, time.Now(), s.rateLimitCooldown)
	if !ok {
		return
	}
	res, err := s.store.MarkAccount(ctx, f.AccountID, m)
	if err != nil {
		s.log.Error("marking account", "account_id", f.AccountID, "status", f.Status, "error", err)
		return
	}
	s.accountChanged(ctx, f.AccountID)
	s.log.Info("account marked", "account_id", f.AccountID, "status", f.Status,
		"error_class", f.ErrorClass, "model", f.Model, "until", m.Until, "reason", m.Reason)
	if res.Disabled {
		s.log.Warn("account disabled", "account_id", f.AccountID, "reason", m.Strikes.Reason)
	}
}

// AccountsChanged drops this process's cached account lists, all of them: for tests that
// write accounts in PostgreSQL directly. The admin API publishes targeted events instead
// (changes.go).
func (s *Service) AccountsChanged() {
	s.accounts.Invalidate()
}
