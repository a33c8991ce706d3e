package gateway

import (
	"context"

	"github.com/poolgate/poolgate/controlsvc/internal/holds"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// The reports' money holds (docs/billing.md, "Reserve, then settle"): read from Redis
// before the batch is written, so that the batch writer refuses a report that disagrees with
// its hold and settles by what the hold names, and applied to the wallet copies after the
// batch committed in PostgreSQL.

// attachHolds sets on the writes the batch's holds, read in its pipeline before the write
// (reports_redis.go); a failed read fails the batch. When Redis lost its holds less than
// one hold life ago, a request without a hold counts as granted: it may have been admitted
// before the loss, and refusing it would lose its charge.
func (s *Service) attachHolds(ctx context.Context, writes []store.UsageWrite, lookup *holds.Lookup) error {
	if len(writes) == 0 {
		return nil
	}
	held, lost, err := lookup.Result(ctx)
	if err != nil {
		return err
	}
	for i := range writes {
		h, ok := held[holds.Key{UserID: writes[i].UserID, RequestID: writes[i].RequestID}]
		if !ok {
			writes[i].Granted = lost
			continue
		}
		writes[i].Held = &store.HeldRef{UserID: h.UserID, KeyID: h.KeyID, GroupID: h.GroupID, BillingMode: h.BillingMode,
			SubscriptionID: h.SubscriptionID, AmountMicros: h.AmountMicros}
	}
	return nil
}

// holdCharges is what the committed batch applies to the wallet copies, releasing its holds
// (in the batch's pipeline after its write, reports_redis.go): an inserted record is charged
// its cost, a replay (stored before) only releases. A refused record keeps its hold (the
// sweeper releases it).
func holdCharges(writes []store.UsageWrite, inserted, refused map[string]bool) []holds.Charge {
	charges := make([]holds.Charge, 0, len(writes))
	seen := make(map[string]bool, len(writes))
	for _, u := range writes {
		if refused[u.RequestID] || seen[u.RequestID] {
			continue
		}
		seen[u.RequestID] = true
		charges = append(charges, holds.Charge{RequestID: u.RequestID, UserID: u.UserID, KeyID: u.APIKeyID,
			GroupID: u.GroupID, CostMicros: u.CostMicros, Replay: !inserted[u.RequestID]})
	}
	return charges
}
