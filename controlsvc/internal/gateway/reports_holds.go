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

// attachHolds reads the batch's holds in one round trip and sets them on the writes. When
// Redis lost its holds less than one hold life ago, a request without a hold counts as
// granted: it may have been admitted before the loss, and refusing it would lose its charge.
func (s *Service) attachHolds(ctx context.Context, writes []store.UsageWrite) error {
	keys := make([]holds.Key, len(writes))
	for i := range writes {
		keys[i] = holds.Key{UserID: writes[i].UserID, RequestID: writes[i].RequestID}
	}
	held, lost, err := s.holds.Lookup(ctx, keys)
	if err != nil {
		return err
	}
	for i := range writes {
		h, ok := held[keys[i]]
		if !ok {
			writes[i].Granted = lost
			continue
		}
		writes[i].Held = &store.HeldRef{UserID: h.UserID, KeyID: h.KeyID, GroupID: h.GroupID, BillingMode: h.BillingMode,
			SubscriptionID: h.SubscriptionID, AmountMicros: h.AmountMicros}
	}
	return nil
}

// settleHolds applies the committed batch to the wallet copies and releases its holds: an
// inserted record is charged its cost, a replay (stored before) only releases. A refused
// record keeps its hold (the sweeper releases it). A failure is logged: the copies reload
// within holds.DefaultRefresh and the holds go at their expiry.
func (s *Service) settleHolds(ctx context.Context, writes []store.UsageWrite, inserted, refused map[string]bool) {
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
	if err := s.holds.Settle(ctx, charges); err != nil {
		s.log.Warn("applying settlements to the holds", "reports", len(charges), "error", err)
	}
}
