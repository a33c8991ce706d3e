package ledger

import (
	"context"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/ttlcache"
)

// Terms cache (docs/design.md, "Caches"): a report batch's (user, group) terms come from
// memory, so that settlement costs no query of its own for them: one query per pair every
// termsTTL at most, instead of one per batch (at low concurrency, one per request).
const (
	// termsTTL is how long a pair's terms are used without reading them again: the
	// admission caches' TTL, which repairs a missed change event in the same time.
	termsTTL        = 2 * time.Second
	termsMaxEntries = 65536
)

// CachedTerms reads the terms of (user, group) pairs through an in-process cache that
// change events invalidate: a user's (its rates in its groups) and a group's (its rate and
// output limits).
type CachedTerms struct {
	src   Terms
	cache *ttlcache.Cache[store.UserGroup, store.GroupTerms]
}

// NewCachedTerms caches src's terms; subscribe Changed to the instance's change events.
func NewCachedTerms(src Terms) *CachedTerms { return newCachedTerms(src, termsTTL) }

func newCachedTerms(src Terms, ttl time.Duration) *CachedTerms {
	return &CachedTerms{src: src, cache: ttlcache.New[store.UserGroup, store.GroupTerms](ttl, termsMaxEntries)}
}

// GroupTerms returns the terms of each pair, the fresh ones from the cache and the rest
// from one query; pairs whose group does not exist are missing from the map (and are not
// cached).
func (c *CachedTerms) GroupTerms(ctx context.Context, pairs []store.UserGroup) (map[store.UserGroup]store.GroupTerms, error) {
	out := make(map[store.UserGroup]store.GroupTerms, len(pairs))
	var missing []store.UserGroup
	for _, p := range pairs {
		if t, ok := c.cache.Peek(p); ok {
			out[p] = t
			continue
		}
		missing = append(missing, p)
	}
	if len(missing) == 0 {
		return out, nil
	}
	gen := c.cache.Generation() // a change during the query stores nothing (PutAt)
	loaded, err := c.src.GroupTerms(ctx, missing)
	if err != nil {
		return nil, err
	}
	for p, t := range loaded {
		out[p] = t
		c.cache.PutAt(p, t, gen)
	}
	return out, nil
}

// Changed drops the terms the change event e may have changed: a user's rates in every
// group (user), a group's rate and limits for every user (group).
func (c *CachedTerms) Changed(e changes.Event) {
	switch e.Kind {
	case changes.User:
		c.cache.InvalidateWhere(func(k store.UserGroup, _ store.GroupTerms) bool { return k.UserID == e.ID })
	case changes.Group:
		c.cache.InvalidateWhere(func(k store.UserGroup, _ store.GroupTerms) bool { return k.GroupID == e.ID })
	}
}

var _ Terms = (*CachedTerms)(nil)
