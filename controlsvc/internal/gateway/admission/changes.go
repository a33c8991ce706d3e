package admission

import (
	"context"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
)

// Admission's caches follow the admin API's writes by targeted events (package changes):
// an event drops the entries of its entity only, on every instance, and the next request
// of those reloads them; entries of every other key, user, group and account stay. The
// caches' TTL (CacheTTL) repairs a missed event.

// applyChange drops what e made stale. A cached "not servable" key answer names no
// entity, so any key, user or group change drops those too (the key may be servable
// again); they cost one statement each to reload.
func (s *Admitter) applyChange(e changes.Event) {
	switch e.Kind {
	case changes.Key:
		s.keys.InvalidateWhere(func(_ string, v keyResult) bool { return !v.ok || v.auth.KeyID == e.ID })
		s.unknownKeys.Invalidate() // a created key is no longer unknown
	case changes.User:
		s.keys.InvalidateWhere(func(_ string, v keyResult) bool { return !v.ok || v.auth.UserID == e.ID })
	case changes.Group:
		s.keys.InvalidateWhere(func(_ string, v keyResult) bool { return !v.ok || v.auth.GroupID == e.ID })
		s.accounts.InvalidateWhere(func(k groupKey, _ []groupAccount) bool { return k.groupID == e.ID })
	case changes.Members:
		s.accounts.InvalidateWhere(func(k groupKey, _ []groupAccount) bool { return k.groupID == e.ID })
	case changes.Account:
		s.accounts.InvalidateWhere(func(_ groupKey, accs []groupAccount) bool {
			for i := range accs {
				if accs[i].ID == e.ID {
					return true
				}
			}
			return false
		})
	}
}

// AccountChanged publishes a change of account id that admission made itself (a health
// mark): this instance stops choosing it at once, the others within a Redis round trip.
func (s *Admitter) AccountChanged(ctx context.Context, id int64) {
	if s.changes == nil {
		s.applyChange(changes.Event{Kind: changes.Account, ID: id})
		return
	}
	if err := s.changes.Publish(ctx, changes.Event{Kind: changes.Account, ID: id}); err != nil {
		s.log.Warn("publishing account change", "account_id", id, "error", err)
	}
}

// AccountsChanged drops this process's cached account lists, all of them: for tests that
// write accounts in PostgreSQL directly. The admin API publishes targeted events instead
// (applyChange).
func (s *Admitter) AccountsChanged() {
	s.accounts.Invalidate()
}
