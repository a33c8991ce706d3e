package gateway

import (
	"container/list"
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

// cacheMaxEntries bounds a cache's memory; a full cache drops its least recently used
// entry, one at a time, never everything: a burst of new keys must neither grow memory
// without limit nor wipe the entries in use.
const cacheMaxEntries = 65536

// loadTimeout bounds a cache fill, which runs detached from the first caller's context so
// that one cancelled request does not fail the callers sharing its load.
const loadTimeout = 5 * time.Second

// ttlCache is a small in-process read-through cache with a fixed TTL and least-recently-used
// eviction. Concurrent misses of one key share a single load. invalidate drops everything,
// and a load that started before an invalidation never stores its (possibly stale) result.
// An expired entry stays until evicted or replaced, so known tells a key seen recently.
type ttlCache[K comparable, V any] struct {
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

func newTTLCache[K comparable, V any](ttl time.Duration) *ttlCache[K, V] {
	return newBoundedCache[K, V](ttl, cacheMaxEntries)
}

func newBoundedCache[K comparable, V any](ttl time.Duration, maxEntries int) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, max: maxEntries, now: time.Now, entries: make(map[K]*list.Element), lru: list.New()}
}

// lookup returns k's entry, marking it used; fresh is false when it has expired.
func (c *ttlCache[K, V]) lookup(k K) (v V, found, fresh bool, gen uint64) {
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

// peek returns k's value while it is fresh.
func (c *ttlCache[K, V]) peek(k K) (V, bool) {
	v, _, fresh, _ := c.lookup(k)
	return v, fresh
}

// known reports whether k has an entry, fresh or expired.
func (c *ttlCache[K, V]) known(k K) bool {
	_, found, _, _ := c.lookup(k)
	return found
}

// put stores v for k now.
func (c *ttlCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	c.store(k, v, gen)
}

// get returns the cached value of k or loads it. Errors are never cached.
func (c *ttlCache[K, V]) get(ctx context.Context, k K, load func(context.Context) (V, error)) (V, error) {
	v, _, fresh, gen := c.lookup(k)
	if fresh {
		return v, nil
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

// len is the number of entries, fresh or expired.
func (c *ttlCache[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// invalidate drops every entry, so the next get reloads.
func (c *ttlCache[K, V]) invalidate() {
	c.mu.Lock()
	c.entries = make(map[K]*list.Element)
	c.lru.Init()
	c.gen++
	c.mu.Unlock()
}
