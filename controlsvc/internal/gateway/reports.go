package gateway

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"

	"github.com/poolgate/poolgate/plugin/wire"
)

// report is one completion report and attempt one upstream attempt of it (docs/design.md,
// "/internal/v1/reports"), in plugin/wire's shapes. admission_ms and upstream_ms are
// optional: a plugin that does not send them records 0. usage_source, input_bytes,
// max_output_tokens and output_bytes are optional too: a report without them is billed from
// its usage (usage_source "upstream"), except a 2xx answer without usage, which is billed by
// estimate (package ledger). Of an attempt, retry_after and ratelimit_reset (when the
// last attempt was a 429 they set the cooldown as at re-admission), usage (the attempt's own
// usage object, in the report's usage_format: the last attempt's usage is the report's, an
// earlier attempt that sends none produced no usage), upstream_model (one without it is
// priced like the report), first_token_ms, retried_same_account and hedge_lost (contract E,
// docs/design.md "Routing explanations") are optional. The record is priced by
// served_model when upstream_model is empty.
type (
	report  = wire.Report
	attempt = wire.Attempt
)

type reportsRequest struct {
	Reports []report `json:"reports"`
	// Dropped is the count of reports the gateway dropped unsent since its last
	// acknowledged batch (docs/design.md); optional, and read leniently (droppedCount).
	Dropped json.RawMessage `json:"dropped"`
}

type reportsReply struct {
	Accepted int `json:"accepted"`
}

// handleReports stores a batch of reports in three steps, so that slots come free as soon
// as possible and PostgreSQL sees one transaction per batch rather than one per report:
//
//  1. every slot of the batch is released, first in the batch's one Redis pipeline before
//     the write, whatever happens next (a release is idempotent, so a retried batch finds
//     them gone);
//  2. the usage records of the valid reports are priced (package ledger) and written
//     with their attempts and settled in one transaction, idempotent on request_id within
//     the batch and across batches; a report whose reservation belongs to another user,
//     key or group is refused (not stored, not charged, the reservation kept);
//  3. the health of the accounts of reports newly stored is settled from their attempts: a
//     failed last attempt marks the account or counts towards its breaker (package health).
//
// An answered last attempt closes its half-open breaker and resets its account's dial
// back-off already in step 1's pipeline: that is idempotent, and the session a probe
// brought home must find its account closed on its next turn.
//
// The requests' routing explanations (admission route.go) and money holds are read in step
// 1's pipeline and stored with their records; after the write one more pipeline settles the
// holds and deletes the explanations (reports_redis.go): two Redis round trips per batch,
// whatever its size, on the success path.
//
// It answers 200 only when the write succeeded, so the plugin retries the batch otherwise.
// A report without request_id or user_id is dropped (retrying cannot fix it) and not
// counted, and so is a refused one; duplicates are acknowledged and counted.
func (s *Service) handleReports(w http.ResponseWriter, r *http.Request) {
	var req reportsRequest
	if err := decodeBody(w, r, maxReportBody, &req); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "Failed to parse reports: "+err.Error())
		return
	}
	ctx := context.WithoutCancel(r.Context()) // a half-processed batch helps nobody
	reps := req.Reports
	dropped := s.droppedCount(req.Dropped)
	valid := make([]*report, 0, len(reps))
	for i := range reps {
		rep := &reps[i]
		if rep.RequestID == "" || rep.UserID <= 0 {
			s.log.Error("dropping invalid report", "request_id", rep.RequestID, "grant_id", rep.GrantID,
				"error", "report lacks request_id or user_id")
			s.metrics.reportsInvalid.Inc()
			continue
		}
		valid = append(valid, rep)
	}
	reads := s.readBatch(ctx, reps, valid) // reports_redis.go: one round trip
	if err := reads.release.Err(ctx); err != nil {
		// Not fatal: the leases expire by their TTL, and the retry releases them again.
		s.log.Warn("releasing slots of reports", "reports", len(reps), "error", err)
	}
	reads.answers.Record(ctx)                           // before the write, see health.AnswersOf
	routes := s.pendingRoutes(reads.routes, len(valid)) // route_settle.go
	writes, err := s.usageWrites(ctx, valid, routes)
	if err != nil {
		writeInternalError(w, s.log, "storing reports", err, "reports", len(reps))
		return
	}
	if err := s.attachHolds(ctx, writes, reads.holds); err != nil { // reports_holds.go
		writeInternalError(w, s.log, "storing reports", err, "reports", len(reps))
		return
	}
	inserted, refused, err := s.store.WriteGrantedUsageBatch(ctx, writes)
	if err != nil {
		writeInternalError(w, s.log, "storing reports", err, "reports", len(reps))
		return
	}
	isRefused, refusedLeases := s.refuse(valid, refused)
	s.settleBatch(ctx, refusedLeases, holdCharges(writes, inserted, isRefused), settledRoutes(routes, isRefused)) // one round trip

	marked := make(map[string]bool, len(inserted))
	var opened []store.AttemptRef // attempts whose failure opened their breaker
	estimated, duplicates := 0, 0
	for i, rep := range valid {
		if isRefused[rep.RequestID] {
			continue
		}
		if !inserted[rep.RequestID] || marked[rep.RequestID] {
			s.log.Debug("duplicate report ignored", "request_id", rep.RequestID)
			duplicates++
			continue
		}
		marked[rep.RequestID] = true // a duplicate later in the batch was not stored
		if writes[i].UsageSource == store.UsageEstimate {
			estimated++
		}
		s.health.SettleAttempts(ctx, rep, &opened)
	}
	s.recordOpenedBreakers(ctx, opened) // route_settle.go
	s.metrics.recordsWritten.Add(int64(len(marked)))
	s.metrics.recordsDuplicate.Add(int64(duplicates))
	s.metrics.usageEstimated.Add(int64(estimated))
	if dropped > 0 {
		// Counted once the batch is stored: an unacknowledged batch's count comes again.
		s.metrics.reportsDropped.Add(dropped)
		s.log.Warn("gateway dropped completion reports", "dropped", dropped)
	}
	writeJSON(w, http.StatusOK, reportsReply{Accepted: len(marked) + duplicates})
}

// usageWrites prices the valid reports of a batch (package ledger) and attaches their
// routing explanations (route_settle.go).
func (s *Service) usageWrites(ctx context.Context, reps []*report, routes map[string][]routing.Entry) ([]store.UsageWrite, error) {
	writes, err := s.pricer.UsageWrites(ctx, reps)
	if err != nil {
		return nil, err
	}
	for i := range writes {
		attachRoute(&writes[i], routes[reps[i].RequestID])
	}
	return writes, nil
}

// droppedCount reads a batch's optional dropped count. It is a diagnostic, so a value that
// is not a non-negative integer is logged and ignored rather than refusing the batch (a
// 400 would drop the reports with it).
func (s *Service) droppedCount(raw json.RawMessage) int64 {
	if len(raw) == 0 || string(raw) == "null" {
		return 0
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
		s.log.Warn("ignoring a report batch's dropped count", "dropped", truncate(string(raw), 32))
		return 0
	}
	return n
}

// leasesOf lists every lease the reports' grants may hold: the user slot and the slot of
// each account the grant touched (the last one and every attempt's).
func leasesOf(reps []report) []slots.Lease {
	out := make([]slots.Lease, 0, 2*len(reps))
	for i := range reps {
		rep := &reps[i]
		if rep.GrantID == "" {
			continue
		}
		if rep.UserID > 0 {
			out = append(out, slots.Lease{Kind: slots.KindUser, ID: rep.UserID, GrantID: rep.GrantID})
		}
		first := len(out)
		add := func(id int64) {
			if id <= 0 {
				return
			}
			for _, l := range out[first:] {
				if l.ID == id {
					return
				}
			}
			out = append(out, slots.Lease{Kind: slots.KindAccount, ID: id, GrantID: rep.GrantID})
		}
		add(rep.AccountID)
		for _, a := range rep.Attempts {
			add(a.AccountID)
		}
	}
	return out
}
