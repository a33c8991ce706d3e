package admission

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// The breakers on admission's side: read with the first round trip, applied to the
// candidates (package health owns what opens and closes them).

// breakerReads queues the breaker reads of every candidate on p, in the admission's first
// round trip (acquireSlots).
func breakerReads(ctx context.Context, p redis.Pipeliner, cands []candidate) []*redis.StringCmd {
	cmds := make([]*redis.StringCmd, len(cands))
	for i := range cands {
		cmds[i] = breaker.Read(ctx, p, cands[i].acc.ID, cands[i].model)
	}
	return cmds
}

// breakerFilter drops the candidates whose breaker for their model is open. Of those whose
// breaker is half-open, the first whose probe this grant claims is kept, at index probe
// (-1: none), to be tried before the others: it is the one request that tests it. A claim
// costs a round trip, only while a breaker is half-open.
//
// When the breakers leave no candidate at all, every candidate is kept (panic mode, as
// Envoy's outlier detection does below its panic threshold; docs/design.md, "Health
// model"): a breaker only ever moves traffic to another account, it never refuses a model
// on its own. So a model no account serves well is tried and failed over as before the
// breakers, and no tenant whose requests trip the breakers (prompts that time out, say)
// can take a model away from the others.
func (s *Admitter) breakerFilter(ctx context.Context, cands []candidate, cmds []*redis.StringCmd, grantID string) (kept []candidate, probe int) {
	now := time.Now()
	route := routeOf(ctx) // route.go: why each account was skipped
	kept = make([]candidate, 0, len(cands))
	var half []int
	for i := range cands {
		var cmd *redis.StringCmd
		if i < len(cmds) {
			cmd = cmds[i]
		}
		switch breaker.VerdictOf(cmd, now) {
		case breaker.Closed:
			kept = append(kept, cands[i])
		case breaker.HalfOpen:
			half = append(half, i)
		default:
			route.mark(cands[i].acc.ID, routing.BreakerOpen)
		}
	}
	probe = -1
	for _, i := range half {
		c := cands[i]
		ok, err := s.breakers.Claim(ctx, c.acc.ID, c.model, grantID, now)
		if err != nil {
			s.log.Warn("claiming breaker probe", "account_id", c.acc.ID, "model", c.model, "error", err)
			continue
		}
		if ok {
			probe = len(kept)
			kept = append(kept, c)
			break
		}
	}
	for _, i := range half { // another grant probes them, or this one probes another
		if probe < 0 || cands[i].acc.ID != kept[probe].acc.ID {
			route.mark(cands[i].acc.ID, routing.BreakerOpen)
		}
	}
	if len(kept) == 0 && len(cands) > 0 {
		s.breakerPanics.Inc()
		return cands, -1
	}
	return kept, probe
}

// throughBreakers applies the breakers read in the admission's first round trip (cmds, one
// per candidate): open ones take their accounts out for the model, and a half-open one
// whose probe this grant claimed is tried first, without waiting. held is the only
// candidate when the round trip took its slot already (nil otherwise); its slot is given
// back if its breaker keeps it out. It returns the candidates left and the candidate
// whose slot is held, if any.
func (s *Admitter) throughBreakers(ctx context.Context, cands []candidate, cmds []*redis.StringCmd, grantID string,
	held *candidate) (kept []candidate, chosen *candidate, err error) {
	kept, probe := s.breakerFilter(ctx, cands, cmds, grantID)
	if held != nil {
		if len(kept) > 0 && kept[0].acc.ID == held.acc.ID {
			return kept, &kept[0], nil
		}
		s.undoSlots(ctx, false, 0, grantID, []slots.Acquisition{
			{Kind: slots.KindAccount, ID: held.acc.ID, GrantID: grantID, Limit: held.acc.Concurrency}})
	}
	if probe < 0 {
		return kept, nil, nil
	}
	c := &kept[probe]
	res, err := s.slots.Enter(ctx, slots.Entry{Kind: slots.KindAccount, ID: c.acc.ID, GrantID: grantID, Limit: c.acc.Concurrency})
	if err != nil {
		s.unclaimProbe(ctx, c, grantID)
		return nil, nil, err
	}
	if res == slots.Held {
		return kept, c, nil
	}
	s.unclaimProbe(ctx, c, grantID) // busy: the next request probes
	return append(kept[:probe:probe], kept[probe+1:]...), nil, nil
}

// unclaimProbe gives back a probe the grant did not send.
func (s *Admitter) unclaimProbe(ctx context.Context, c *candidate, grantID string) {
	s.health.UnclaimProbe(ctx, c.acc.ID, c.model, grantID)
}
