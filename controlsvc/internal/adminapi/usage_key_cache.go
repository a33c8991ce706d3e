package adminapi

import (
	"context"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/ttlcache"
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
	// maxGatewayKeyLen refuses, without hashing, a key longer than any the gateway issues
	// (sk-pg- and 48 hex characters) with room to spare.
	maxGatewayKeyLen = 256
)

// keyUsageCache holds the rendered answers of known keys and the hashes of unknown ones.
// Concurrent misses of one key share one load.
type keyUsageCache struct {
	answers *ttlcache.Cache[string, []byte]   // hash → the JSON answer
	unknown *ttlcache.Cache[string, struct{}] // hashes that matched no usable key
	loads   chan struct{}
}

func newKeyUsageCache() *keyUsageCache {
	return &keyUsageCache{
		answers: ttlcache.New[string, []byte](keyUsageTTL, keyUsageMaxEntries),
		unknown: ttlcache.New[string, struct{}](unknownKeyTTL, unknownKeyMaxEntries),
		loads:   make(chan struct{}, keyUsageMaxLoads),
	}
}

// errUnknownKey is a load's answer for a hash that matched no usable key.
type errUnknownKey struct{}

func (errUnknownKey) Error() string { return "unknown key" }

// get returns the JSON answer of the key with hash h: from memory, or from load, which
// returns errUnknownKey{} for an unknown key (remembered) or another error (not cached).
// The load runs detached from ctx, bounded by ttlcache.LoadTimeout, so that one client
// leaving does not fail the others sharing it.
func (c *keyUsageCache) get(ctx context.Context, h string, load func(context.Context) ([]byte, error)) ([]byte, error) {
	if _, ok := c.unknown.Peek(h); ok {
		return nil, errUnknownKey{}
	}
	return c.answers.Get(ctx, h, func(lctx context.Context) ([]byte, error) {
		// Read before the load: a refusal found by a load that began before forgetUnknown
		// is not remembered.
		gen := c.unknown.Generation()
		select {
		case c.loads <- struct{}{}:
		case <-lctx.Done():
			return nil, lctx.Err()
		}
		defer func() { <-c.loads }()
		body, err := load(lctx)
		if _, unknown := err.(errUnknownKey); unknown {
			c.unknown.PutAt(h, struct{}{}, gen)
		}
		return body, err
	})
}

// forgetUnknown drops every remembered unknown key: an admin write may have made one usable.
func (c *keyUsageCache) forgetUnknown() {
	c.unknown.Invalidate()
}
