package gateway

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// pendingRoutes reads the routing explanations of a batch's requests from Redis, in one
// pipelined round trip. Failing to read costs only the explanations: the records are
// stored without them (and their lists expire by their TTL).
func (s *Service) pendingRoutes(ctx context.Context, reps []*report) map[string][]routing.Entry {
	if s.routes == nil || len(reps) == 0 {
		return nil
	}
	ids := make([]string, len(reps))
	for i, rep := range reps {
		ids[i] = rep.RequestID
	}
	s.routeWriter.Flush(ctx) // entries queued before this settlement are read with it
	routes, err := s.routes.ReadMany(ctx, ids)
	if err != nil {
		s.log.Warn("reading routing explanations of reports", "reports", len(reps), "error", err)
		return nil
	}
	return routes
}

// attachRoute stores a request's routing entries with its record, and takes from them
// whether each attempt's failure opened its breaker (recorded by the admission that settled
// the attempt, admission admit.go).
func attachRoute(u *store.UsageWrite, entries []routing.Entry) {
	if len(entries) == 0 {
		return
	}
	flags := make([]routing.AttemptFlags, len(u.Attempts))
	for i, a := range u.Attempts {
		flags[i] = routing.AttemptFlags{AccountID: a.AccountID, RetriedSameAccount: a.RetriedSameAccount, HedgeLost: a.HedgeLost}
	}
	_, opened := routing.Match(flags, entries)
	for i := range u.Attempts {
		u.Attempts[i].BreakerOpen = opened[i]
	}
	// Every string in an entry is ours or cleaned (admission route.go), but a \u0000 would fail the
	// whole batch in jsonb: such an explanation is dropped rather than risk it.
	if b, err := json.Marshal(entries); err == nil && !bytes.Contains(b, []byte(`\u0000`)) {
		u.Routing = b
	}
}

// dropRoutes deletes the Redis lists of a batch's requests once their records hold them;
// a refused report's request is not settled, so its list stays.
func (s *Service) dropRoutes(ctx context.Context, routes map[string][]routing.Entry, refused map[string]bool) {
	if len(routes) == 0 {
		return
	}
	ids := make([]string, 0, len(routes))
	for id := range routes {
		if !refused[id] {
			ids = append(ids, id)
		}
	}
	if err := s.routes.Delete(ctx, ids); err != nil {
		s.log.Warn("deleting settled routing explanations", "requests", len(ids), "error", err)
	}
}

// recordOpenedBreakers sets breaker_open on the last attempts whose failure opened their
// breaker: they are marked after the batch's transaction (only a stored report marks), so
// the flag follows in one statement, and only when a breaker opened. A failure costs the
// flag only.
func (s *Service) recordOpenedBreakers(ctx context.Context, refs []store.AttemptRef) {
	if len(refs) == 0 {
		return
	}
	if err := s.store.SetBreakerOpen(ctx, refs); err != nil {
		s.log.Warn("recording opened breakers on attempts", "attempts", len(refs), "error", err)
	}
}
