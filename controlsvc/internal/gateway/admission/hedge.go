package admission

import (
	"context"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Hedged first token (docs/design.md, "Hedged first token"): a streaming
// attempt of a group with hedge_after_ms that has produced no output after that long makes
// the plugin ask for one more account for the same grant (admit with hedge: true). The
// grant then holds two account slots: the current attempt's is never released by it, and
// the final report releases both (leasesOf: every attempt's account), as renewals renew both
// (the plugin sends one lease per account).

// hedgeAfter is the grant's hedge_after_ms: the group's, 0 (off) when unset.
func hedgeAfter(key store.KeyAuth) int64 {
	if key.HedgeAfterMs == nil || *key.HedgeAfterMs < 0 {
		return 0
	}
	return *key.HedgeAfterMs
}

// msgHedgeRequest refuses a hedge that names no grant or carries a failed attempt.
const msgHedgeRequest = "hedge requires a grant_id and no failed attempt"

// validHedge checks the shape of a hedge request before anything else is done for it.
func validHedge(req *Request) *Rejection {
	if !req.Hedge {
		return nil
	}
	if req.GrantID == "" || req.Failed != nil {
		return RejectInvalid(msgHedgeRequest)
	}
	return nil
}

// prepareHedge readies an authenticated hedge: it must belong to a live grant (its user
// lease still held, which also keeps it from taking a second user slot), never waits in a
// queue, and neither reads nor moves the session's sticky binding (the current account
// keeps it). A refusal is no_account, the answer to "no other account free now".
func (s *Admitter) prepareHedge(ctx context.Context, key store.KeyAuth, req *Request) (context.Context, *Rejection, error) {
	held, err := s.slots.RenewLease(ctx, slots.KindUser, key.UserID, req.GrantID)
	if err != nil {
		return ctx, nil, err
	}
	if !held {
		return ctx, rejectNoAccount, nil
	}
	req.SessionHash = ""
	return withWaitBudget(ctx, 0), nil, nil
}
