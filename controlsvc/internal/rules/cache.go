package rules

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/livecache"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Channel is the Redis pub/sub channel an instance publishes on after changing a rule; every
// instance subscribes and reloads, so a change is in force everywhere within a second.
const Channel = "pg:rules:changed"

// DefaultRefresh is the safety-net reload interval of the rule cache.
const DefaultRefresh = livecache.DefaultRefresh

// Loader reads every stored rule; *store.Store implements it.
type Loader interface {
	ListPassthroughRules(ctx context.Context) ([]store.PassthroughRule, error)
}

var _ Loader = (*store.Store)(nil)

// Cache holds the current rule set of this process. Readers never wait on the database: they
// get the last loaded set. Start keeps it fresh; Changed tells every instance to reload.
type Cache struct {
	*livecache.Cache[*Set]
	rdb redis.UniversalClient
}

// NewCache assembles a cache with an empty rule set; it does no I/O. refresh <= 0 means
// DefaultRefresh.
func NewCache(loader Loader, rdb redis.UniversalClient, refresh time.Duration, log *slog.Logger) *Cache {
	load := func(ctx context.Context) (*Set, error) {
		stored, err := loader.ListPassthroughRules(ctx)
		if err != nil {
			return nil, err
		}
		return NewSet(stored), nil
	}
	return &Cache{
		Cache: livecache.New("error passthrough rules", Channel, &Set{}, load, rdb, refresh, log),
		rdb:   rdb,
	}
}

// Rules returns the current rule set.
func (c *Cache) Rules() *Set { return c.Get() }
