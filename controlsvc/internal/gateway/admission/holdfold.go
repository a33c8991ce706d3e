package admission

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/holds"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

// The hold folded into the slot grant (docs/billing.md, "Reserve, then
// settle"): on the common path of a first admission, one priced candidate, the reserve
// script rides in the slot grant's pipeline, so a grant costs one Redis round trip. The
// pipeline cannot make the grant depend on the hold, so the hold counts only when the
// grant was immediate and chose that candidate; otherwise it is released (one more round
// trip, off the common path) and bill runs as before, after the waits. Every rule,
// refusal and message stays bill's: the same script, the same arguments.

// foldedHold is the hold sent with the slot grant of one admission.
type foldedHold struct {
	in       holds.Request
	note     costNote
	account  int64
	upstream string
	pending  *holds.Pending
	sends    int
}

// foldHold prepares the folded hold of a first admission with one candidate whose model
// is priced; nil when the admission bills as before (re-admission, several candidates,
// an unpriced model, which bill notes and refuses or serves).
func (s *Admitter) foldHold(key store.KeyAuth, req *Request, ch choice, first bool) *foldedHold {
	if !first || len(ch.cands) != 1 {
		return nil
	}
	c := ch.cands[0]
	upstream := c.upstream
	if ch.model != req.Model && upstream == "" {
		upstream = ch.routed // as admit names it
	}
	pricedModel := usage.PricedModel(upstream, ch.model)
	price, _, ok := s.prices.Table().Lookup(pricedModel)
	if !ok {
		return nil
	}
	in, note := holdRequest(key, req, price, true, pricedModel)
	return &foldedHold{in: in, note: note, account: c.acc.ID, upstream: upstream}
}

// send queues the hold into the grant's pipeline, once: a pipeline re-sent after NOSCRIPT
// goes without it, and bill holds later.
func (f *foldedHold) send(ctx context.Context, h *holds.Holds, p redis.Pipeliner) {
	if f == nil {
		return
	}
	f.sends++
	f.pending = nil
	if f.sends == 1 {
		f.pending = h.ReserveIn(ctx, p, f.in)
	}
}

// drop gives back what the folded hold took when it will not count, and forgets it.
func (s *Admitter) dropHold(ctx context.Context, f *foldedHold) {
	if f == nil || f.pending == nil {
		return
	}
	hold, _, done, err := f.pending.Result()
	f.pending = nil
	if !done || err != nil || hold.RequestID == "" || hold.Existing {
		return // nothing held by this admission
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	if _, err := s.holds.Release(ctx, f.in.UserID, f.in.RequestID); err != nil {
		// The sweeper releases it after the reservation TTL.
		s.log.Warn("releasing folded hold", "request_id", f.in.RequestID, "error", err)
	}
}

// holdOutcome is bill's answer from the folded hold, for the chosen account; decided is
// false when the hold does not decide (another account or model, a wallet to load): bill
// must run.
func (s *Admitter) holdOutcome(ctx context.Context, f *foldedHold, chosen *candidate, upstream string) (rej *Rejection, decided bool, err error) {
	if f == nil || f.pending == nil {
		return nil, false, nil
	}
	if chosen.acc.ID != f.account || upstream != f.upstream {
		s.dropHold(ctx, f)
		return nil, false, nil
	}
	_, refusal, done, err := f.pending.Result()
	if !done {
		return nil, false, nil
	}
	rej, err = reserveOutcome(refusal, err, f.note)
	return rej, true, err
}
