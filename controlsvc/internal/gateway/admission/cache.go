package admission

import (
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/ttlcache"
)

// CacheTTL bounds how stale admission data may be. A deleted or disabled key, user or
// account must stop being served within 5 s across instances (docs/design.md, "Caches"):
// the admin API's change events (changes.go) reach every instance at once, and this TTL
// bounds it when an event is missed.
const CacheTTL = 2 * time.Second

// cacheRefresh is the age after which a key or account entry in use is reloaded in the
// background while it answers: admission does not wait for PostgreSQL for a key or group
// in use, and a missed event is repaired within about this long for them.
const cacheRefresh = time.Second

// cacheMaxEntries bounds a cache's memory; a full cache drops its least recently used
// entry, one at a time, never everything: a burst of new keys must neither grow memory
// without limit nor wipe the entries in use.
const cacheMaxEntries = 65536

// loadTimeout bounds detached work: cache fills (ttlcache.LoadTimeout), key probes and the
// cleanup of refused or undelivered grants.
const loadTimeout = ttlcache.LoadTimeout
