package gateway

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// pendingRoutes is the routing explanations of a batch's requests, read in the batch's
// pipeline before its write (reports_redis.go). Failing to read costs only the
// explanations: the records are stored without them (and their lists expire by their TTL).
func (s *Service) pendingRoutes(read *routing.Read, reports int) map[string][]routing.Entry {
	if read == nil {
		return nil
	}
	routes, err := read.Entries()
	if err != nil {
		s.log.Warn("reading routing explanations of reports", "reports", reports, "error", err)
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

// settledRoutes lists the requests whose Redis lists go once their records hold them
// (deleted in the batch's pipeline after its write, reports_redis.go); a refused report's
// request is not settled, so its list stays.
func settledRoutes(routes map[string][]routing.Entry, refused map[string]bool) []string {
	ids := make([]string, 0, len(routes))
	for id := range routes {
		if !refused[id] {
			ids = append(ids, id)
		}
	}
	return ids
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
