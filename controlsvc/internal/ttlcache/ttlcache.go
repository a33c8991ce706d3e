// Package ttlcache is the control service's in-process read-through cache: a fixed TTL,
// a bound on entries with least-recently-used eviction (one entry at a time, never
// everything), loads shared by concurrent misses and detached from the first caller, and
// invalidation that no load begun before it can undo. Admission's key and account caches
// and GET /v1/usage's answer caches are all one of these.
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

// lookup returns k's entry, marking it used; fresh is false when it has expired.
func (c *Cache[K, V]) lookup(k K) (v V, found, fresh bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gen = c.gen
	el, ok := c.entries[k]
	if !ok {
		return v, false, false, gen
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*cacheEntry[K, V])
	return e.v, true, c.now().Before(e.expires), gen
}

// Peek returns k's value while it is fresh.
func (c *Cache[K, V]) Peek(k K) (V, bool) {
	v, _, fresh, _ := c.lookup(k)
	return v, fresh
}

// Known reports whether k has an entry, fresh or expired.
func (c *Cache[K, V]) Known(k K) bool {
	_, found, _, _ := c.lookup(k)
	return found
}

// Put stores v for k now.
func (c *Cache[K, V]) Put(k K, v V) {
	c.PutAt(k, v, c.Generation())
}

// Get returns the cached value of k or loads it. Errors are never cached.
func (c *Cache[K, V]) Get(ctx context.Context, k K, load func(context.Context) (V, error)) (V, error) {
	v, _, fresh, gen := c.lookup(k)
	if fresh {
		return v, nil
	}

	flightKey := fmt.Sprintf("%d/%v", gen, k)
	ch := c.group.DoChan(flightKey, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), LoadTimeout)
		defer cancel()
		v, err := load(lctx)
		if err != nil {
			return v, err
		}
		c.PutAt(k, v, gen)
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

// Invalidate drops every entry, so the next get reloads.
func (c *Cache[K, V]) Invalidate() {
	c.mu.Lock()
	c.entries = make(map[K]*list.Element)
	c.lru.Init()
	c.gen++
	c.mu.Unlock()
}
