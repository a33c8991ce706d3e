package health

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/metrics"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/ttlcache"
)

// detachedTimeout bounds each Redis or PostgreSQL step of a settlement, which runs detached
// from its request (the gateway's loadTimeout).
const detachedTimeout = ttlcache.LoadTimeout

// Marker writes an account-wide mark; *store.Store implements it.
type Marker interface {
	MarkAccount(ctx context.Context, accountID int64, m store.AccountMark) (store.MarkResult, error)
}

var _ Marker = (*store.Store)(nil)

// Config is what Health works with; every field but Log and Openings is required.
type Config struct {
	Store    Marker
	Breakers *breaker.Breakers
	// Cooldown is the rest of an account after a 429 that announces no reset; <= 0 means
	// DefaultRateLimitCooldown, above MaxRateLimitCooldown is capped.
	Cooldown time.Duration
	// Openings counts the breakers opened (or re-opened by a failed probe); nil: uncounted.
	Openings *metrics.Counter
	// AccountChanged publishes an account's change after a mark, so that every instance
	// stops choosing it at once (the gateway's caches and change events).
	AccountChanged func(ctx context.Context, accountID int64)
	Log            *slog.Logger
}

// Health settles failed and answered attempts: marks their accounts and drives their
// breakers. It holds no state of its own but the breaker settings each group's admissions
// last used.
type Health struct {
	store          Marker
	breakers       *breaker.Breakers
	cooldown       time.Duration
	openings       *metrics.Counter
	accountChanged func(ctx context.Context, accountID int64)
	log            *slog.Logger

	// groupBreakers maps a group id to the breaker.Settings its admissions last used.
	groupBreakers sync.Map
}

// New builds a Health from cfg.
func New(cfg Config) *Health {
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = DefaultRateLimitCooldown
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Openings == nil {
		cfg.Openings = metrics.NewRegistry().Counter("poolgate_breaker_openings_total", "unexported")
	}
	if cfg.AccountChanged == nil {
		cfg.AccountChanged = func(context.Context, int64) {}
	}
	return &Health{store: cfg.Store, breakers: cfg.Breakers, cooldown: min(cfg.Cooldown, MaxRateLimitCooldown),
		openings: cfg.Openings, accountChanged: cfg.AccountChanged, log: cfg.Log}
}

// Cooldown is the rest of a 429 that announces no reset, with its default and cap applied.
func (h *Health) Cooldown() time.Duration { return h.cooldown }

// MarkFailedAttempt settles the health of the account of a failed attempt of grantID at
// re-admission and reports whether it opened the attempt's breaker. f.Model is the model
// the account was sent, after its own mapping (the gateway resolves it).
func (h *Health) MarkFailedAttempt(ctx context.Context, key store.KeyAuth, grantID string, f Failure) bool {
	opened := h.SettleFailure(ctx, f, grantID, h.BreakerSettings(key))
	_, marks := MarkFor(f, time.Now(), h.cooldown)
	_, counts := BreakerFailure(f)
	if (marks || counts || f.ErrorClass == ErrorClassDial) && f.AccountID > 0 && grantID != "" {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
		defer cancel()
		if err := h.breakers.MarkSettled(mctx, f.AccountID, grantID); err != nil {
			h.log.Warn("remembering settled failure", "account_id", f.AccountID, "error", err)
		}
	}
	return opened
}

// SettleReportedFailure settles a report's failed last attempt, unless its re-admission
// did already (a request that found no other account reports the failure it re-admitted
// with), and reports whether it opened the attempt's breaker.
func (h *Health) SettleReportedFailure(ctx context.Context, f Failure, grantID string, bs breaker.Settings) bool {
	if grantID != "" {
		tctx, cancel := context.WithTimeout(ctx, detachedTimeout)
		settled, err := h.breakers.TakeSettled(tctx, f.AccountID, grantID)
		cancel()
		if err != nil {
			h.log.Warn("reading settled failure", "account_id", f.AccountID, "error", err)
		}
		if settled {
			return false
		}
	}
	return h.SettleFailure(ctx, f, grantID, bs)
}

// SettleFailure applies what a failed attempt of grantID means for its account: an
// account-wide mark (MarkFor), a failure of its (account, model) breaker (BreakerFailure),
// or nothing; opened is true when the failure opened the breaker. It runs detached from the
// request: a client that goes away must not undo a mark.
func (h *Health) SettleFailure(ctx context.Context, f Failure, grantID string, bs breaker.Settings) (opened bool) {
	if f.AccountID <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
	defer cancel()
	if f.ErrorClass == ErrorClassDial {
		n, err := h.breakers.DialFailure(ctx, f.AccountID)
		if err != nil {
			h.log.Warn("counting dial failure", "account_id", f.AccountID, "error", err)
		}
		f.DialStreak = n // 0 on an error: the first step
	}
	h.markAccount(ctx, f)
	if reason, ok := BreakerFailure(f); ok && f.Model != "" {
		return h.FailBreaker(ctx, f, reason, grantID, bs)
	}
	return false
}

// markAccount applies the account-wide mark of a failed attempt, if any, and publishes the
// account's change, so that every instance stops choosing the account at once.
func (h *Health) markAccount(ctx context.Context, f Failure) {
	m, ok := MarkFor(f, time.Now(), h.cooldown)
	if !ok {
		return
	}
	res, err := h.store.MarkAccount(ctx, f.AccountID, m)
	if err != nil {
		h.log.Error("marking account", "account_id", f.AccountID, "status", f.Status, "error", err)
		return
	}
	h.accountChanged(ctx, f.AccountID)
	h.log.Info("account marked", "account_id", f.AccountID, "status", f.Status,
		"error_class", f.ErrorClass, "model", f.Model, "until", m.Until, "reason", m.Reason)
	if res.Disabled {
		h.log.Warn("account disabled", "account_id", f.AccountID, "reason", m.Strikes.Reason)
	}
}
