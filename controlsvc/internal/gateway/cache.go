package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// cacheTTL bounds how stale admission data may be. A deleted or disabled key, user or
// account must stop being served within 5 s across instances (issue 2 §6), so every
// in-process cache lives at most this long; there is no cross-instance invalidation.
const cacheTTL = 2 * time.Second

// cacheMaxEntries bounds a cache's memory; a full cache first drops expired entries, then
// everything (a burst of unknown keys must not grow memory without limit).
const cacheMaxEntries = 65536

// loadTimeout bounds a cache fill, which runs detached from the first caller's context so
// that one cancelled request does not fail the callers sharing its load.
const loadTimeout = 5 * time.Second

// ttlCache is a small in-process read-through cache with a fixed TTL. Concurrent misses of
// one key share a single load. invalidate drops everything, and a load that started before
// an invalidation never stores its (possibly stale) result.
type ttlCache[K comparable, V any] struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[K]cacheEntry[V]
	gen     uint64

	group singleflight.Group
}

type cacheEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, now: time.Now, entries: make(map[K]cacheEntry[V])}
}

// get returns the cached value of k or loads it. Errors are never cached.
func (c *ttlCache[K, V]) get(ctx context.Context, k K, load func(context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	e, ok := c.entries[k]
	gen := c.gen
	c.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		return e.v, nil
	}

	flightKey := fmt.Sprintf("%d/%v", gen, k)
	ch := c.group.DoChan(flightKey, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		v, err := load(lctx)
		if err != nil {
			return v, err
		}
		c.store(k, v, gen)
		return v, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			var zero V
			return zero, res.Err
		}
		return res.Val.(V), nil
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

func (c *ttlCache[K, V]) store(k K, v V, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	now := c.now()
	if len(c.entries) >= cacheMaxEntries {
		for key, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, key)
			}
		}
		if len(c.entries) >= cacheMaxEntries {
			c.entries = make(map[K]cacheEntry[V])
		}
	}
	c.entries[k] = cacheEntry[V]{v: v, expires: now.Add(c.ttl)}
}

// invalidate drops every entry, so the next get reloads.
func (c *ttlCache[K, V]) invalidate() {
	c.mu.Lock()
	c.entries = make(map[K]cacheEntry[V])
	c.gen++
	c.mu.Unlock()
}
