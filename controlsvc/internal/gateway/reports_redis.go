package gateway

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/holds"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// A report batch's Redis work is two round trips whatever its size (docs/design.md, "The
// hot path: one request, hop by hop"): one pipeline before the ledger write (batchReads) and
// one after it (settleBatch). Each package queues its commands on
// the shared pipeline and reads its own replies after it ran, so each keeps its errors'
// meaning. Script calls Redis refused with NOSCRIPT (a restarted or flushed server) are
// re-sent alone by their package (package luapipe): the other commands ran, and a release
// or a settlement must not run twice.

// batchReads is what a batch sends before its write, in one pipeline and in this order:
// the slot releases (first: slots come free whatever happens next), the answers for the
// breakers (before the write, health.AnswersOf), the routing explanations and the holds.
type batchReads struct {
	release *slots.Release
	answers *health.Answers
	routes  *routing.Read
	holds   *holds.Lookup
}

// readBatch runs the pipeline before the write. It waits first for the routing entries
// queued before the batch (routing.Writer.Flush), so that they are read with it.
func (s *Service) readBatch(ctx context.Context, reps []report, valid []*report) *batchReads {
	var b batchReads
	leases := leasesOf(reps)
	answers := health.AnswersOf(valid)
	if len(leases) == 0 && len(answers) == 0 && len(valid) == 0 {
		return &b
	}
	ids := make([]string, len(valid))
	keys := make([]holds.Key, len(valid))
	for i, rep := range valid {
		ids[i] = rep.RequestID
		keys[i] = holds.Key{UserID: rep.UserID, RequestID: rep.RequestID}
	}
	if len(valid) > 0 {
		s.routeWriter.Flush(ctx)
	}
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if len(leases) > 0 {
			b.release = s.slots.QueueRelease(ctx, p, leases)
		}
		b.answers = s.health.QueueAnswers(ctx, p, answers)
		if len(valid) > 0 {
			b.routes = s.routes.QueueRead(ctx, p, ids)
			b.holds = s.holds.QueueLookup(ctx, p, keys)
		}
		return nil
	}) // each package reads its own replies
	return &b
}

// settleBatch runs the pipeline after the write, when it has something to send: the user
// slots of refused reports' reservations (reports_refused.go), the holds' settlements
// (reports_holds.go) and the deletion of the settled routing explanations (route_settle.go).
// Each failure is logged, not the batch's: it is stored.
func (s *Service) settleBatch(ctx context.Context, leases []slots.Lease, charges []holds.Charge, settled []string) {
	if len(leases) == 0 && len(charges) == 0 && len(settled) == 0 {
		return
	}
	var (
		release    *slots.Release
		settlement *holds.Settlement
		deletion   *routing.Deletion
	)
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if len(leases) > 0 {
			release = s.slots.QueueRelease(ctx, p, leases)
		}
		if len(charges) > 0 {
			settlement = s.holds.QueueSettle(ctx, p, charges)
		}
		if len(settled) > 0 {
			deletion = s.routes.QueueDelete(ctx, p, settled)
		}
		return nil
	}) // each package reads its own replies
	if err := release.Err(ctx); err != nil {
		// Not fatal: the leases expire by their TTL.
		s.log.Warn("releasing slots of refused reports", "reports", len(leases), "error", err)
	}
	if err := settlement.Err(ctx); err != nil {
		// The copies reload within holds.DefaultRefresh and the holds go at their expiry.
		s.log.Warn("applying settlements to the holds", "reports", len(charges), "error", err)
	}
	if err := deletion.Err(); err != nil {
		s.log.Warn("deleting settled routing explanations", "requests", len(settled), "error", err)
	}
}
