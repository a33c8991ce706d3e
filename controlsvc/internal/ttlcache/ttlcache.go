// Package ttlcache is the control service's in-process read-through cache: a fixed TTL,
// a bound on entries with least-recently-used eviction (one entry at a time, never
// everything), loads shared by concurrent misses and detached from the first caller, an
// optional refresh ahead of expiry that the caller does not wait for, and invalidation
// (of everything or of the entries a predicate picks) that no load begun before it can
// undo. Admission's key and account caches and GET /v1/usage's answer caches are all one
// of these.
package ttlcache

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// LoadTimeout bounds a fill, which runs detached from the first caller's context so that
// one cancelled request does not fail the callers sharing its load.
const LoadTimeout = 5 * time.Second

// Cache is a read-through cache with a fixed TTL and least-recently-used eviction.
// Concurrent misses of one key share a single load. Invalidate drops everything, and a load
// that started before an invalidation never stores its (possibly stale) result. An expired
// entry stays until evicted or replaced, so Known tells a key seen recently.
type Cache[K comparable, V any] struct {
	ttl time.Duration
	max int
	now func() time.Time
	// refreshAfter, when set (< ttl), is the age after which a hit still answers at once
	// but starts a load in the background: a key in use never waits for its reload.
	refreshAfter time.Duration

	mu      sync.Mutex
	entries map[K]*list.Element // of *cacheEntry[K, V]
	lru     *list.List          // front: most recently used
	gen     uint64

	group singleflight.Group
}

type cacheEntry[K comparable, V any] struct {
	k       K
	v       V
	expires time.Time
}

// New makes a cache whose entries are fresh for ttl, holding at most maxEntries.
func New[K comparable, V any](ttl time.Duration, maxEntries int) *Cache[K, V] {
	return &Cache[K, V]{ttl: ttl, max: maxEntries, now: time.Now, entries: make(map[K]*list.Element), lru: list.New()}
}

// WithRefresh makes hits older than after (and younger than the TTL) start a background
// reload while they answer with the value held; after >= the TTL turns it off.
func (c *Cache[K, V]) WithRefresh(after time.Duration) *Cache[K, V] {
	c.refreshAfter = after
	return c
}

// lookup returns k's entry, marking it used; fresh is false when it has expired, stale is
// true when it is fresh but due for a background refresh.
func (c *Cache[K, V]) lookup(k K) (v V, found, fresh, stale bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gen = c.gen
	el, ok := c.entries[k]
	if !ok {
		return v, false, false, false, gen
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*cacheEntry[K, V])
	now := c.now()
	fresh = now.Before(e.expires)
	stale = fresh && c.refreshAfter > 0 && c.refreshAfter < c.ttl && !now.Before(e.expires.Add(c.refreshAfter-c.ttl))
	return e.v, true, fresh, stale, gen
}

// Peek returns k's value while it is fresh.
func (c *Cache[K, V]) Peek(k K) (V, bool) {
	v, _, fresh, _, _ := c.lookup(k)
	return v, fresh
}

// Known reports whether k has an entry, fresh or expired.
func (c *Cache[K, V]) Known(k K) bool {
	_, found, _, _, _ := c.lookup(k)
	return found
}

// Put stores v for k now.
func (c *Cache[K, V]) Put(k K, v V) {
	c.PutAt(k, v, c.Generation())
}

// Get returns the cached value of k or loads it. Errors are never cached.
func (c *Cache[K, V]) Get(ctx context.Context, k K, load func(context.Context) (V, error)) (V, error) {
	v, _, fresh, stale, gen := c.lookup(k)
	if fresh {
		if stale {
			// The answer does not wait; a failed refresh leaves the entry until it expires.
			c.group.DoChan(c.flightKey(gen, k), c.fill(ctx, k, gen, load))
		}
		return v, nil
	}
	ch := c.group.DoChan(c.flightKey(gen, k), c.fill(ctx, k, gen, load))
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

func (c *Cache[K, V]) flightKey(gen uint64, k K) string { return fmt.Sprintf("%d/%v", gen, k) }

// fill is the shared load of k: detached from the caller, bounded, stored unless the cache
// was invalidated since gen.
func (c *Cache[K, V]) fill(ctx context.Context, k K, gen uint64, load func(context.Context) (V, error)) func() (any, error) {
	return func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), LoadTimeout)
		defer cancel()
		v, err := load(lctx)
		if err != nil {
			return v, err
		}
		c.PutAt(k, v, gen)
		return v, nil
	}
}

// Generation identifies the cache's contents between two invalidations: PutAt with a
// generation read before a load stores nothing if the cache was invalidated meanwhile.
func (c *Cache[K, V]) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// PutAt stores v for k unless the cache was invalidated since generation gen.
func (c *Cache[K, V]) PutAt(k K, v V, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	expires := c.now().Add(c.ttl)
	if el, ok := c.entries[k]; ok {
		e := el.Value.(*cacheEntry[K, V])
		e.v, e.expires = v, expires
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry[K, V]).k)
	}
	c.entries[k] = c.lru.PushFront(&cacheEntry[K, V]{k: k, v: v, expires: expires})
}

// Len is the number of entries, fresh or expired.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// InvalidateWhere drops the entries drop picks (one entity's change, never a flush), and
// returns how many. Like Invalidate it starts a new generation, so that a load that began
// before the change (and may have read the old row) stores nothing.
func (c *Cache[K, V]) InvalidateWhere(drop func(K, V) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, el := range c.entries {
		if drop(k, el.Value.(*cacheEntry[K, V]).v) {
			c.lru.Remove(el)
			delete(c.entries, k)
			n++
		}
	}
	c.gen++
	return n
}

// Invalidate drops every entry, so the next get reloads.
func (c *Cache[K, V]) Invalidate() {
	c.mu.Lock()
	c.entries = make(map[K]*list.Element)
	c.lru.Init()
	c.gen++
	c.mu.Unlock()
}
