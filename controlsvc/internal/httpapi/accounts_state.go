package httpapi

import (
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// AccountNotifier is told after every account write, so that admission stops using its
// cached copy of the accounts at once (package gateway). Other controlsvc instances follow
// within their cache TTL.
type AccountNotifier interface {
	AccountsChanged()
}

// accountState is an account's health (issue 3 §7), as in force when read: a deadline that
// has passed, and the pause reason of a pause that ended, show as null; model_blocks lists
// only blocks still in force and is {} when there are none. disabled_reason is set while the
// health rules keep the account disabled (the third upstream 403 within 3 h).
type accountState struct {
	RateLimitedUntil *time.Time           `json:"rate_limited_until"`
	OverloadedUntil  *time.Time           `json:"overloaded_until"`
	PausedUntil      *time.Time           `json:"paused_until"`
	PauseReason      *string              `json:"pause_reason"`
	DisabledReason   *string              `json:"disabled_reason"`
	ModelBlocks      map[string]time.Time `json:"model_blocks"`
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
	a.accountsChanged()
	a.log.Info("account state cleared", "account_id", id, "status", acc.Status)
	writeJSON(w, http.StatusOK, newAccountView(acc))
}

// accountsChanged tells the notifier, if any, that accounts were written.
func (a *API) accountsChanged() {
	if a.accounts != nil {
		a.accounts.AccountsChanged()
	}
}
