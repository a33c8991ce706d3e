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

// candidate is an account that may serve the request now, with the model to send it.
type candidate struct {
	acc      *groupAccount
	upstream string
}

// candidates lists the accounts of the key's group that can serve model now: active on the
// platform (cached), mapping the model, not excluded, with a concurrency and no health mark.
// It refuses with model_not_found when no account of the group serves the model at all, and
// with no_account when some do but none is usable now. It never touches Redis.
func (s *Service) candidates(ctx context.Context, key store.KeyAuth, model string,
	exclude map[int64]bool) ([]candidate, *rejection, error) {
	accounts, err := s.groupAccounts(ctx, key.GroupID, key.Platform)
	if err != nil {
		return nil, nil, fmt.Errorf("loading accounts: %w", err)
	}
	now := time.Now()
	served := false
	var out []candidate
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
		out = append(out, candidate{acc: a, upstream: up})
	}
	switch {
	case !served && len(accounts) > 0:
		return nil, rejectModelNotFound(model), nil
	case len(out) == 0:
		return nil, rejectNoAccount, nil
	}
	return out, nil, nil
}

// acquireBest orders the candidates (lowest priority number first, then least loaded by
// live, then least recently used) and acquires the first that has room for grantID; nil
// when all are full.
func (s *Service) acquireBest(ctx context.Context, cands []candidate, live map[int64]int64,
	grantID string) (*candidate, error) {
	byID := make(map[int64]*candidate, len(cands))
	order := make([]scheduler.Candidate, 0, len(cands))
	for i := range cands {
		a := cands[i].acc
		if live[a.ID] >= int64(a.Concurrency) {
			continue // full right now; acquiring would fail anyway
		}
		byID[a.ID] = &cands[i]
		order = append(order, scheduler.Candidate{
			ID:          a.ID,
			Priority:    a.Priority,
			Live:        live[a.ID],
			Concurrency: int64(a.Concurrency),
			LastUsed:    s.touch.lastUsed(a.ID, a.LastUsedAt),
		})
	}
	scheduler.Order(order, nil)
	for _, c := range order {
		ok, err := s.slots.Acquire(ctx, slots.KindAccount, c.ID, grantID, byID[c.ID].acc.Concurrency)
		if err != nil {
			return nil, err
		}
		if ok {
			return byID[c.ID], nil
		}
	}
	return nil, nil
}
