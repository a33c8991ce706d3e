package gateway

import (
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/ttlcache"
)

// cacheTTL bounds how stale admission data may be. A deleted or disabled key, user or
// account must stop being served within 5 s across instances (issue 2 §6), so every
// in-process cache lives at most this long; there is no cross-instance invalidation.
const cacheTTL = 2 * time.Second

// cacheMaxEntries bounds a cache's memory; a full cache drops its least recently used
// entry, one at a time, never everything: a burst of new keys must neither grow memory
// without limit nor wipe the entries in use.
const cacheMaxEntries = 65536

// loadTimeout bounds detached work: cache fills (ttlcache.LoadTimeout), key probes and the
// cleanup of refused or undelivered grants.
const loadTimeout = ttlcache.LoadTimeout
