package admission

import (
	"context"
	"strings"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/ledger"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"

	"github.com/poolgate/poolgate/plugin/wire"
)

// RouteLog is one admission's routing explanation as the admission makes it (docs/design.md,
// "Routing explanations"; package routing): candidates() says why each account was
// skipped, acquireAccount() which were busy and which was chosen, and the gateway's
// handleAdmit has RecordRoute queue the entry for the request's Redis list once the answer
// is written. It travels in the context, so the selection code records into it without new
// parameters; every method is a no-op on nil (no log in the context).
type RouteLog struct {
	entry   routing.Entry
	pos     map[int64]int // candidate index by account id
	started bool          // the admission reached the failed attempt or the candidates
}

type routeKey struct{}

// RejectAbandoned stands, in a routing explanation only, for a grant its caller left
// before it was written: it is never sent.
var RejectAbandoned = &Rejection{reason: "abandoned"}

// WithRoute carries rt in ctx for the admission to fill.
func WithRoute(ctx context.Context, rt *RouteLog) context.Context {
	return context.WithValue(ctx, routeKey{}, rt)
}

// routeOf is the context's RouteLog, nil when there is none.
func routeOf(ctx context.Context) *RouteLog {
	rt, _ := ctx.Value(routeKey{}).(*RouteLog)
	return rt
}

// begin names the admission's kind and the model its accounts are asked to serve.
func (rt *RouteLog) begin(kind, model string) {
	if rt == nil {
		return
	}
	// The start time orders the entries: an entry is written after its answer, when the
	// next admission of the request may have begun.
	rt.entry.At = time.Now().UTC()
	rt.entry.Kind, rt.entry.Model = kind, truncate(model, ledger.MaxModelLen)
}

// failed records the failed attempt the admission settles; the caller sets BreakerOpened.
func (rt *RouteLog) failed(f failure) *routing.Failed {
	if rt == nil {
		return &routing.Failed{} // written to and dropped
	}
	rt.started = true
	rt.entry.Failed = &routing.Failed{AccountID: f.AccountID, Status: f.Status,
		ErrorClass: noNUL(truncate(f.ErrorClass, maxLogField))}
	return rt.entry.Failed
}

// add records an account of the group with why it was skipped, or routing.Eligible.
func (rt *RouteLog) add(a *groupAccount, reason string) {
	if rt == nil {
		return
	}
	rt.started = true
	if rt.pos == nil {
		rt.pos = make(map[int64]int)
	}
	c := routing.Candidate{AccountID: a.ID, Reason: reason}
	if reason == routing.Paused {
		c.PauseReason = truncate(a.PauseReason, maxLogField)
	}
	rt.pos[a.ID] = len(rt.entry.Candidates)
	rt.entry.Candidates = append(rt.entry.Candidates, c)
}

// mark changes the reason of an account added before; a sticky choice is not overwritten
// by the generic one.
func (rt *RouteLog) mark(id int64, reason string) {
	if rt == nil {
		return
	}
	i, ok := rt.pos[id]
	if !ok {
		return
	}
	if reason == routing.Chosen && rt.entry.Candidates[i].Reason == routing.Sticky {
		return
	}
	rt.entry.Candidates[i].Reason = reason
}

// sticky records the account the session is bound to.
func (rt *RouteLog) sticky(id int64) {
	if rt != nil {
		rt.entry.StickyAccountID = id
	}
}

// RecordRoute queues the admission's entry for its request's list (routing.Writer: one
// pipeline for the entries of many admissions, after the answer is written so the caller
// never waits for it, and the handler returns without a Redis round trip): a grant, or a
// refused re-admission (its request will be settled, and the refusal is part of why it
// ended as it did). A refused first admission leaves no grant and no record, so nothing is
// kept for it. Failing to write costs only the explanation, so it is logged.
func (s *Admitter) RecordRoute(ctx context.Context, req *Request, rt *RouteLog, reply *wire.Grant, rej *Rejection, err error) {
	if rt == nil || !rt.started || s.routeWriter == nil {
		return
	}
	first := rt.entry.Kind == routing.KindFirst
	switch {
	case reply != nil:
		rt.entry.AccountID = reply.AccountID
	case first:
		return
	case rej != nil:
		rt.entry.Refusal = rej.reason
	case err != nil:
		rt.entry.Refusal = "error"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	s.routeWriter.Add(ctx, req.RequestID, rt.entry)
}

// admissionKind tells a first admission from a failover and a plain re-admission.
func admissionKind(req *Request) string {
	switch {
	case req.GrantID == "":
		return routing.KindFirst
	case req.Hedge:
		return routing.KindHedge
	case req.Failed != nil && req.Failed.AccountID > 0:
		return routing.KindFailover
	}
	return routing.KindReadmission
}

// noNUL drops NUL characters: PostgreSQL's jsonb refuses \u0000, and a settled record's
// explanation must never fail its report batch.
func noNUL(v string) string {
	return strings.ReplaceAll(v, "\x00", "")
}

// maxLogField bounds a client-supplied value (a pause reason, an error class) in a routing
// explanation, like the gateway's log lines.
const maxLogField = 64

// truncate cuts v to at most n bytes.
func truncate(v string, n int) string {
	if len(v) > n {
		return v[:n]
	}
	return v
}
