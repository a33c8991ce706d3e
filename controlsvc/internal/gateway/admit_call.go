package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"

	"github.com/poolgate/poolgate/plugin/wire"
)

// The caller's deadline (deadline_ms, docs/design.md "POST /internal/v1/admit") is split so
// that the answer is written before it: the waits end admission.WaitMargin before it,
// leaving time for billing after a wait; all work ends answerMargin before it, leaving time
// to write.
const (
	answerMargin = 250 * time.Millisecond
	// answerWriteTimeout bounds writing the answer of a call that sent no deadline.
	answerWriteTimeout = 10 * time.Second
)

// workContext bounds the admission's work by the caller's deadline less answerMargin.
func workContext(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	if deadline.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, deadline.Add(-answerMargin))
}

// tooLate reports whether a call with deadline (zero: none) can no longer get an answer
// in time at now.
func tooLate(deadline, now time.Time) bool {
	return !deadline.IsZero() && !now.Before(deadline.Add(-answerMargin))
}

// grantWriteBy is the write deadline of a grant: the caller's deadline, else
// answerWriteTimeout from now. A grant the write deadline cuts is undone (deliverGrant);
// refusals are written within answerWriteTimeout whatever the deadline, as a caller still
// listening is better off with one.
func grantWriteBy(deadline, now time.Time) time.Time {
	if deadline.IsZero() {
		return now.Add(answerWriteTimeout)
	}
	return deadline
}

// handleAdmit serves POST /internal/v1/admit. Every answer is written before the caller's
// deadline or not at all, and a grant that does not reach its caller in time (the caller
// left, the deadline passed, the write failed) is undone at once: nobody would report it.
func (s *Service) handleAdmit(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rc := http.NewResponseController(w)
	var req admission.Request
	if err := decodeBody(w, r, maxAdmitBody, &req); err != nil {
		writeReject(w, req.Path, "", admission.RejectInvalid("Failed to parse admission request"))
		return
	}
	deadline := req.CallDeadline()
	readmission := req.GrantID != ""
	attrs := func() []any {
		// Client-supplied fields are cut to a small bound: a log line must not carry them
		// at any length.
		return []any{"request_id", truncate(req.RequestID, maxLogField), "grant_id", truncate(req.GrantID, maxLogField),
			"path", truncate(req.Path, maxLogField), "model", truncate(req.Model, maxLogField),
			"readmission", readmission, "elapsed", time.Since(start)}
	}
	var reply *wire.Grant
	var rej *admission.Rejection
	var err error
	ctx, cancel := workContext(r.Context(), deadline)
	defer cancel()
	route := &admission.RouteLog{} // filled by the admission, written once the answer is (admission route.go)
	ctx = admission.WithRoute(ctx, route)
	switch {
	case tooLate(deadline, start):
		rej = admission.RejectDeadline // refused before anything is taken
	case s.adm.ShuttingDown() && !readmission:
		// A re-admission goes on: it settles its failed attempt and is served if it need not
		// wait (its request holds a user slot already); a wait refuses it (admission wait.go).
		rej = admission.RejectShuttingDown
	default:
		reply, rej, err = s.adm.Admit(ctx, &req)
	}
	if s.beforeAnswer != nil && reply != nil {
		s.beforeAnswer(r.Context())
	}
	// This replaces the server's per-route write bound (cmd/controlsvc), which would cut an
	// answer after a long wait.
	_ = rc.SetWriteDeadline(time.Now().Add(answerWriteTimeout))
	switch {
	case err != nil && r.Context().Err() != nil:
		// The plugin gave up the call (its client left): nobody reads an answer, and the
		// wait already dropped the request's queue entries.
		s.log.Info("admission abandoned by the caller", attrs()...)
	case err != nil && ctx.Err() != nil:
		// The work ran into the caller's deadline; what it took was undone on the way out.
		s.log.Info("admission ran out of its deadline", attrs()...)
		writeReject(w, req.Path, req.Platform(), admission.RejectDeadline)
	case err != nil:
		writeInternalError(w, s.log, "admission failed", err, attrs()...)
	case rej != nil:
		if ok, suppressed := s.refusals.allow(rej.Reason(), time.Now()); ok { // logsample.go
			s.log.Info("admission refused", append(attrs(), "reason", rej.Reason(), "status", rej.Status(),
				"suppressed", suppressed)...)
		}
		writeReject(w, req.Path, req.Platform(), rej)
	case r.Context().Err() != nil:
		// Granted, but the plugin gave up the call first: it never learns of the grant and
		// will never report it, so what the grant holds is given back now rather than
		// after the lease TTL and the reservation TTL.
		s.adm.AbandonGrant(r.Context(), reply, !readmission)
		reply, rej = nil, admission.RejectAbandoned // for the routing explanation
		s.log.Info("grant abandoned by the caller", attrs()...)
	case !deadline.IsZero() && !time.Now().Before(deadline):
		// Too late to be used: the plugin stopped waiting at its deadline.
		s.adm.AbandonGrant(r.Context(), reply, !readmission)
		reply, rej = nil, admission.RejectDeadline
		s.log.Info("grant undone: its deadline passed", attrs()...)
		writeReject(w, req.Path, req.Platform(), admission.RejectDeadline)
	default:
		_ = rc.SetWriteDeadline(grantWriteBy(deadline, time.Now()))
		s.deliverGrant(w, rc, r, reply, !readmission, attrs)
	}
	s.adm.RecordRoute(r.Context(), &req, route, reply, rej, err)
}

// deliverGrant writes the grant and flushes it, so that a failed write (the connection is
// gone, the write deadline passed) is seen here and the grant undone. A write that the
// kernel accepted but the caller never read cannot be seen; the lease and reservation TTLs
// cover that case.
func (s *Service) deliverGrant(w http.ResponseWriter, rc *http.ResponseController, r *http.Request,
	reply *wire.Grant, first bool, attrs func() []any) {
	writeJSON(w, http.StatusOK, reply)
	if err := rc.Flush(); err != nil {
		s.adm.AbandonGrant(r.Context(), reply, first)
		s.log.Info("grant undone: writing it failed", append(attrs(), "error", err)...)
		return
	}
	if s.log.Enabled(r.Context(), slog.LevelDebug) { // the hot path: build no attributes for nothing
		s.log.Debug("admitted", append(attrs(), "account_id", reply.AccountID)...)
	}
}
