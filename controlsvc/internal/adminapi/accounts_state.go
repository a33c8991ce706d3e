package adminapi

import (
	"context"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Breakers are the (account, model) circuit breakers in Redis (package breaker).
type Breakers interface {
	List(ctx context.Context, accountID int64, now time.Time) ([]breaker.View, error)
	Clear(ctx context.Context, accountID int64) error
}

// AccountNotifier is told after every account write, so that admission stops using its
// cached copy of the accounts at once (package gateway). Other controlsvc instances follow
// within their cache TTL.
type AccountNotifier interface {
	AccountsChanged()
}

// accountState is an account's health (docs/design.md, "Account health"), as in force when
// read: a deadline that has passed, and the pause reason of a pause that ended, show as
// null; model_blocks lists only blocks still in force and is {} when there are none.
// disabled_reason is set while the health rules keep the account disabled (the third
// upstream 403 within 3 h).
type accountState struct {
	RateLimitedUntil *time.Time           `json:"rate_limited_until"`
	OverloadedUntil  *time.Time           `json:"overloaded_until"`
	PausedUntil      *time.Time           `json:"paused_until"`
	PauseReason      *string              `json:"pause_reason"`
	DisabledReason   *string              `json:"disabled_reason"`
	ModelBlocks      map[string]time.Time `json:"model_blocks"`
	Breakers         []breaker.View       `json:"breakers,omitempty"`
}

func newAccountState(a store.Account, now time.Time) accountState {
	st := accountState{
		RateLimitedUntil: inForce(a.RateLimitedUntil, now),
		OverloadedUntil:  inForce(a.OverloadedUntil, now),
		PausedUntil:      inForce(a.PausedUntil, now),
		ModelBlocks:      make(map[string]time.Time, len(a.ModelBlocks)),
	}
	if st.PausedUntil != nil && a.PauseReason != "" {
		reason := a.PauseReason
		st.PauseReason = &reason
	}
	if a.DisabledReason != "" {
		reason := a.DisabledReason
		st.DisabledReason = &reason
	}
	for model, until := range a.ModelBlocks {
		if now.Before(until) {
			st.ModelBlocks[model] = until.UTC()
		}
	}
	return st
}

// inForce returns the deadline in UTC while it is in the future, else nil.
func inForce(deadline *time.Time, now time.Time) *time.Time {
	if deadline == nil || !now.Before(*deadline) {
		return nil
	}
	t := deadline.UTC()
	return &t
}

// clearAccountState ends every health state of the account (POST …/accounts/{id}/clear-state):
// rate limit, overload, pause, model blocks and the count of recent 403s; an account the
// 403 rule disabled is active again, one an operator disabled stays disabled.
func (a *API) clearAccountState(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	acc, err := a.st.ClearAccountState(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if a.breakers != nil {
		if err := a.breakers.Clear(r.Context(), id); err != nil {
			writeError(w, r, err) // the PostgreSQL marks are gone; a retry clears the rest
			return
		}
	}
	a.publish(r.Context(), changes.Event{Kind: changes.Account, ID: id})
	a.log.Info("account state cleared", "account_id", id, "status", acc.Status)
	writeJSON(w, http.StatusOK, newAccountView(acc))
}

// accountsChanged tells the notifier, if any, that accounts were written.
func (a *API) accountsChanged() {
	if a.accounts != nil {
		a.accounts.AccountsChanged()
	}
}

// accountViewWithBreakers is the account's view with its open breakers, read from Redis. A
// Redis that cannot be read leaves them out rather than fail the read of the account.
func (a *API) accountViewWithBreakers(ctx context.Context) func(store.Account) (accountView, error) {
	return func(acc store.Account) (accountView, error) {
		v := newAccountView(acc)
		if a.breakers == nil {
			return v, nil
		}
		views, err := a.breakers.List(ctx, acc.ID, time.Now())
		if err != nil {
			a.log.Warn("reading breakers", "account_id", acc.ID, "error", err)
			return v, nil
		}
		if len(views) > 0 {
			v.State.Breakers = views
		}
		return v, nil
	}
}
