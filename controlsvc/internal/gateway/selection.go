package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/scheduler"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// groupKey identifies a cached account list.
type groupKey struct {
	groupID  int64
	platform string
}

// groupAccount is a cached account with its compiled model mapping.
type groupAccount struct {
	store.CandidateAccount
	mapping scheduler.Mapping
}

// healthyAt reports whether no health mark keeps the account out at now.
func (a *groupAccount) healthyAt(now time.Time) bool {
	return !now.Before(a.RateLimitedUntil) && !now.Before(a.OverloadedUntil) && !now.Before(a.PausedUntil)
}

// groupAccounts returns the group's active accounts on its platform, cached for cacheTTL.
func (s *Service) groupAccounts(ctx context.Context, groupID int64, platform string) ([]groupAccount, error) {
	k := groupKey{groupID: groupID, platform: platform}
	return s.accounts.get(ctx, k, func(ctx context.Context) ([]groupAccount, error) {
		rows, err := s.store.GroupAccounts(ctx, groupID, platform)
		if err != nil {
			return nil, err
		}
		out := make([]groupAccount, 0, len(rows))
		for _, row := range rows {
			m, err := scheduler.ParseMapping(row.ModelMapping)
			if err != nil {
				// The admin API validates mappings; a broken one takes only its account out.
				s.log.Error("skipping account with unreadable model mapping", "account_id", row.ID, "error", err)
				continue
			}
			out = append(out, groupAccount{CandidateAccount: row, mapping: m})
		}
		return out, nil
	})
}

// selectAccount chooses an account for model in the key's group and acquires its slot for
// grantID. It refuses with model_not_found when no account of the group serves the model
// at all, and with no_account when some do but none is usable now.
func (s *Service) selectAccount(ctx context.Context, key store.KeyAuth, model string, exclude map[int64]bool,
	grantID string) (*groupAccount, string, *rejection, error) {
	accounts, err := s.groupAccounts(ctx, key.GroupID, key.Platform)
	if err != nil {
		return nil, "", nil, fmt.Errorf("loading accounts: %w", err)
	}

	now := time.Now()
	served := false
	usable := make(map[int64]*groupAccount)
	upstream := make(map[int64]string)
	var ids []int64
	for i := range accounts {
		a := &accounts[i]
		up, ok := a.mapping.Resolve(model)
		if !ok {
			continue
		}
		served = true
		if exclude[a.ID] || a.Concurrency <= 0 || !a.healthyAt(now) {
			continue
		}
		usable[a.ID], upstream[a.ID] = a, up
		ids = append(ids, a.ID)
	}
	switch {
	case !served && len(accounts) > 0:
		return nil, "", rejectModelNotFound(model), nil
	case len(ids) == 0:
		return nil, "", rejectNoAccount, nil
	}

	live, err := s.slots.Counts(ctx, slots.KindAccount, ids)
	if err != nil {
		return nil, "", nil, err
	}
	cands := make([]scheduler.Candidate, 0, len(ids))
	for _, id := range ids {
		a := usable[id]
		if live[id] >= int64(a.Concurrency) {
			continue // full right now; acquiring would fail anyway
		}
		cands = append(cands, scheduler.Candidate{
			ID:          id,
			Priority:    a.Priority,
			Live:        live[id],
			Concurrency: int64(a.Concurrency),
			LastUsed:    s.touch.lastUsed(id, a.LastUsedAt),
		})
	}
	scheduler.Order(cands, nil)
	for _, c := range cands {
		a := usable[c.ID]
		ok, err := s.slots.Acquire(ctx, slots.KindAccount, c.ID, grantID, a.Concurrency)
		if err != nil {
			return nil, "", nil, err
		}
		if ok {
			return a, upstream[c.ID], nil, nil
		}
	}
	return nil, "", rejectNoAccount, nil
}
