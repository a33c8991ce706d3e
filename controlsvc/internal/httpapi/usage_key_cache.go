package httpapi

import (
	"container/list"
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// GET /v1/usage is public: anyone may send any key. These bounds keep what it costs the
// database independent of the callers (docs/security.md, "Public reads").
const (
	// keyUsageTTL is how long a key's answer is served from memory: a client polling its
	// usage costs one query per second at most, however often it asks.
	keyUsageTTL = time.Second
	// unknownKeyTTL is how long a key that matched no usable key is refused without a
	// query. Admin writes that can make a key usable (creation, patching a key, user or
	// group) clear it at once in this instance; other instances see such a key within this
	// time.
	unknownKeyTTL = 30 * time.Second
	// keyUsageMaxEntries and unknownKeyMaxEntries bound the caches' memory; a full cache
	// evicts its least recently used entry, one at a time.
	keyUsageMaxEntries   = 4096
	unknownKeyMaxEntries = 65536
	// keyUsageMaxLoads bounds the endpoint's concurrent queries; further misses wait for a
	// turn (or for their client to leave).
	keyUsageMaxLoads = 4
	// keyUsageLoadTimeout bounds one load, which runs detached from the first caller's
	// context so that one client leaving does not fail the others sharing its load.
	keyUsageLoadTimeout = 5 * time.Second
	// maxGatewayKeyLen refuses, without hashing, a key longer than any the gateway issues
	// (sk-pg- and 48 hex characters) with room to spare.
	maxGatewayKeyLen = 256
)

// keyUsageCache holds the rendered answers of known keys and the hashes of unknown ones.
// Concurrent misses of one key share one load.
type keyUsageCache struct {
	answers *lru // hash → []byte, the JSON answer
	unknown *lru // hash → struct{}
	loads   chan struct{}
	group   singleflight.Group

	mu  sync.Mutex
	gen uint64 // bumped by forgetUnknown: a load begun before stores no refusal
}

func newKeyUsageCache() *keyUsageCache {
	return &keyUsageCache{
		answers: newLRU(keyUsageMaxEntries, keyUsageTTL),
		unknown: newLRU(unknownKeyMaxEntries, unknownKeyTTL),
		loads:   make(chan struct{}, keyUsageMaxLoads),
	}
}

// errUnknownKey is a load's answer for a hash that matched no usable key.
type errUnknownKey struct{}

func (errUnknownKey) Error() string { return "unknown key" }

// get returns the JSON answer of the key with hash h: from memory, or from load, which
// returns errUnknownKey{} for an unknown key (remembered) or another error (not cached).
func (c *keyUsageCache) get(ctx context.Context, h string, load func(context.Context) ([]byte, error)) ([]byte, error) {
	if _, ok := c.unknown.get(h); ok {
		return nil, errUnknownKey{}
	}
	if v, ok := c.answers.get(h); ok {
		return v.([]byte), nil
	}
	ch := c.group.DoChan(h, func() (any, error) {
		c.mu.Lock()
		gen := c.gen
		c.mu.Unlock()
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyUsageLoadTimeout)
		defer cancel()
		select {
		case c.loads <- struct{}{}:
		case <-lctx.Done():
			return nil, lctx.Err()
		}
		defer func() { <-c.loads }()
		body, err := load(lctx)
		switch err.(type) {
		case nil:
			c.answers.put(h, body)
		case errUnknownKey:
			c.mu.Lock()
			if gen == c.gen {
				c.unknown.put(h, struct{}{})
			}
			c.mu.Unlock()
		}
		return body, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// forgetUnknown drops every remembered unknown key: an admin write may have made one usable.
func (c *keyUsageCache) forgetUnknown() {
	c.mu.Lock()
	c.gen++
	c.unknown.clear()
	c.mu.Unlock()
}

// lru is a bounded map whose entries expire ttl after they are put; when full, put evicts
// the least recently used entry.
type lru struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	order   *list.List // front: most recently used; values are *lruEntry
	entries map[string]*list.Element
}

type lruEntry struct {
	key     string
	v       any
	expires time.Time
}

func newLRU(max int, ttl time.Duration) *lru {
	return &lru{max: max, ttl: ttl, now: time.Now, order: list.New(), entries: make(map[string]*list.Element)}
}

func (l *lru) get(k string) (any, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.entries[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*lruEntry)
	if !l.now().Before(e.expires) {
		l.order.Remove(el)
		delete(l.entries, k)
		return nil, false
	}
	l.order.MoveToFront(el)
	return e.v, true
}

func (l *lru) put(k string, v any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	exp := l.now().Add(l.ttl)
	if el, ok := l.entries[k]; ok {
		e := el.Value.(*lruEntry)
		e.v, e.expires = v, exp
		l.order.MoveToFront(el)
		return
	}
	for l.order.Len() >= l.max {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.entries, oldest.Value.(*lruEntry).key)
	}
	l.entries[k] = l.order.PushFront(&lruEntry{key: k, v: v, expires: exp})
}

func (l *lru) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}

func (l *lru) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.order.Init()
	l.entries = make(map[string]*list.Element)
}
