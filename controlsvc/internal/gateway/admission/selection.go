package admission

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"
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

// blockedFor reports whether the account is blocked at now for the upstream model it would
// be sent (an upstream "model not found" blocks that model for 30 min; docs/design.md,
// "Account health").
func (a *groupAccount) blockedFor(upstreamModel string, now time.Time) bool {
	until, ok := a.ModelBlocks[upstreamModel]
	return ok && now.Before(until)
}

// groupAccounts returns the group's active accounts on its platform, cached for CacheTTL.
func (s *Admitter) groupAccounts(ctx context.Context, groupID int64, platform string) ([]groupAccount, error) {
	k := groupKey{groupID: groupID, platform: platform}
	return s.accounts.Get(ctx, k, func(ctx context.Context) ([]groupAccount, error) {
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
	// model is the model the account is sent, upstream or the group-mapped model: the one
	// its health (model blocks, breakers) is kept for.
	model string
}

// candidates lists the accounts of the key's group that can serve model now: active on the
// platform (cached), mapping the model, not excluded, with a concurrency, no health mark and
// no block for the upstream model the mapping sends it. model is the group-mapped name of
// the client's requested model (group_rules.go): a candidate's upstream is its own mapping's
// target, else model when the group's mapping renamed requested, so the grant names what
// is sent whenever any mapping changed it. It refuses with model_not_found (naming
// requested) when no account of the group serves the model at all, and with no_account when
// some do but none is usable now — accounts blocked for the model included: an upstream's
// "model not found" is a state of the account that passes, not the group's configuration.
// A model no name answers for (servable.go; named: the group's mapping or the operator names
// it) is model_not_found too, whatever the accounts' mappings. It never touches Redis.
func (s *Admitter) candidates(ctx context.Context, key store.KeyAuth, requested, model string, named bool,
	exclude map[int64]bool) ([]candidate, *Rejection, error) {
	accounts, err := s.groupAccounts(ctx, key.GroupID, key.Platform)
	if err != nil {
		return nil, nil, fmt.Errorf("loading accounts: %w", err)
	}
	now := time.Now()
	served := false
	answered := s.answers(ctx, key.Platform, accounts, model, named) // servable.go
	var out []candidate
	route := routeOf(ctx) // route.go: why each account was skipped
	for i := range accounts {
		a := &accounts[i]
		up, ok := a.mapping.Resolve(model)
		if !ok || !answered {
			route.add(a, routing.NotMapped)
			continue
		}
		served = true
		sent := health.UpstreamOr(up, model)
		if reason := skipReason(a, exclude, sent, now); reason != "" {
			route.add(a, reason)
			continue
		}
		route.add(a, routing.Eligible)
		if up == "" && model != requested {
			up = model
		}
		out = append(out, candidate{acc: a, upstream: up, model: sent})
	}
	switch {
	case !served && len(accounts) > 0:
		return nil, rejectModelNotFound(requested), nil
	case len(out) == 0:
		return nil, rejectNoAccount, nil
	}
	return out, nil, nil
}

// skipReason says why an account that maps the model cannot serve it now (a routing
// reason, shown in the request's routing explanation), "" when it can. A new filter is one
// case here.
func skipReason(a *groupAccount, exclude map[int64]bool, upstream string, now time.Time) string {
	switch {
	case exclude[a.ID]:
		return routing.Excluded
	case a.Concurrency <= 0:
		return routing.NoConcurrency
	case now.Before(a.PausedUntil):
		return routing.Paused
	case now.Before(a.RateLimitedUntil):
		return routing.RateLimited
	case now.Before(a.OverloadedUntil):
		return routing.Overloaded
	case a.blockedFor(upstream, now):
		return routing.ModelBlocked
	}
	return ""
}

// acquireAccount takes an account slot for grantID (docs/design.md, "Sticky sessions"): the
// session's target account first (its preferred account when that is a candidate again, else
// its bound one), waiting on it (sticky limits) when it is busy and the session id is
// explicit — a content-seeded session never waits while another candidate has a free slot;
// else the candidates below 100 % load, where load = (active + waiting) / concurrency, in
// scheduler order; else a wait on the least-loaded candidate (fallback limits). loads may be
// nil (read here). On a re-admission a failed wait answers no_account, so the plugin maps the
// last upstream failure instead.
func (s *Admitter) acquireAccount(ctx context.Context, cands []candidate, loads map[int64]slots.Load,
	grantID string, ss *session, first bool) (*candidate, *Rejection, error) {
	if loads == nil {
		var err error
		if loads, err = s.slots.Loads(ctx, slots.KindAccount, candidateIDs(cands)); err != nil {
			return nil, nil, err
		}
	}
	byID := make(map[int64]*candidate, len(cands))
	for i := range cands {
		byID[cands[i].acc.ID] = &cands[i]
	}
	entry := func(c *candidate, maxWaiters int, timeout time.Duration) slots.Entry {
		return slots.Entry{Kind: slots.KindAccount, ID: c.acc.ID, GrantID: grantID, Limit: c.acc.Concurrency,
			MaxWaiters: maxWaiters, WaitTTL: timeout + waitEntryMargin}
	}
	refuse := func(err error) (*candidate, *Rejection, error) {
		switch {
		case errors.Is(err, errShuttingDown):
			return nil, RejectShuttingDown, nil
		case !first:
			return nil, rejectNoAccount, nil
		case errors.Is(err, errWaitQueueFull):
			return nil, rejectAccountQueueFull, nil
		case errors.Is(err, errWaitTimeout):
			return nil, rejectAccountConcurrency, nil
		}
		return nil, nil, err
	}
	route := routeOf(ctx)
	sticky := ss.target(byID)
	route.sticky(sticky)
	if sticky > 0 {
		c := byID[sticky]
		res, err := s.slots.Enter(ctx, entry(c, 0, 0))
		if err != nil {
			return nil, nil, err
		}
		if res == slots.Held {
			route.mark(sticky, routing.Sticky)
			return c, nil, nil
		}
		if bound, ok := byID[ss.bound.account]; ok && sticky != ss.bound.account {
			// Home is busy: the account the session was failed over to serves it meanwhile
			// rather than make it wait (sticky.go: the binding keeps its preferred account).
			res, err := s.slots.Enter(ctx, entry(bound, 0, 0))
			if err != nil {
				return nil, nil, err
			}
			if res == slots.Held {
				route.mark(sticky, routing.Busy)
				route.mark(bound.acc.ID, routing.Sticky)
				return bound, nil, nil
			}
		}
		if !ss.content && loads[sticky].Waiting < int64(s.wait.StickyMaxWaiters) {
			// A busy sticky account makes an explicit session wait rather than rebind. Its
			// queue may have filled since loads was read: then the request is placed like
			// one without a sticky account, as if the queue had been seen full.
			err := s.waitSlot(ctx, entry(c, s.wait.StickyMaxWaiters, s.wait.StickyTimeout), s.wait.StickyTimeout)
			if err == nil {
				route.mark(sticky, routing.Sticky)
				return c, nil, nil
			}
			if !errors.Is(err, errWaitQueueFull) {
				return refuse(err)
			}
		}
		route.mark(sticky, routing.Busy)
	}
	order := make([]scheduler.Candidate, 0, len(cands))
	var least *candidate
	var leastLoad scheduler.Candidate
	for i := range cands {
		a := cands[i].acc
		l := loads[a.ID]
		sc := scheduler.Candidate{
			ID:          a.ID,
			Priority:    a.Priority,
			Live:        l.Active + l.Waiting,
			Concurrency: int64(a.Concurrency),
			LastUsed:    s.touch.lastUsed(a.ID, a.LastUsedAt),
		}
		if least == nil || sc.Live*leastLoad.Concurrency < leastLoad.Live*sc.Concurrency {
			least, leastLoad = &cands[i], sc
		}
		if sc.Live >= sc.Concurrency {
			route.mark(a.ID, routing.Busy)
			continue // at 100 % load: acquiring would fail anyway
		}
		order = append(order, sc)
	}
	scheduler.Order(order, nil)
	for _, c := range order {
		res, err := s.slots.Enter(ctx, entry(byID[c.ID], 0, 0))
		if err != nil {
			return nil, nil, err
		}
		if res == slots.Held {
			return byID[c.ID], nil, nil
		}
		route.mark(c.ID, routing.Busy) // taken since loads were read
	}
	if least == nil {
		return nil, rejectNoAccount, nil
	}
	if err := s.waitSlot(ctx, entry(least, s.wait.FallbackMaxWaiters, s.wait.FallbackTimeout), s.wait.FallbackTimeout); err != nil {
		return refuse(err)
	}
	return least, nil, nil
}
