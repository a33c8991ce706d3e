// Package livecachetest runs several instances of a livecache-based cache in one test, as
// several controlsvc processes would run them on one database and Redis.
package livecachetest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/internal/testenv"
)

// subscribeTimeout bounds the wait for every instance to listen.
const subscribeTimeout = 5 * time.Second

// Cache is what Start needs of a cache: the lifecycle of livecache.Cache.
type Cache interface {
	Load(ctx context.Context) error
	Start()
	Close()
}

// Start makes n caches with newCache, each on its own client of redisURL, loads and starts
// them, and closes them by t.Cleanup. It returns once n subscribers listen on channel, so
// a test measures propagation and not start-up.
func Start[C Cache](t testing.TB, n int, redisURL, channel string, newCache func(rdb *redis.Client) (C, error)) []C {
	t.Helper()
	ctx := context.Background()
	caches := make([]C, 0, n)
	var rdb *redis.Client
	for i := 0; i < n; i++ {
		rdb = testenv.RedisClient(t, redisURL)
		c, err := newCache(rdb)
		if err != nil {
			t.Fatalf("new cache: %v", err)
		}
		if err := c.Load(ctx); err != nil {
			t.Fatalf("loading cache: %v", err)
		}
		c.Start()
		t.Cleanup(c.Close)
		caches = append(caches, c)
	}
	deadline := time.Now().Add(subscribeTimeout)
	for {
		subs, err := rdb.PubSubNumSub(ctx, channel).Result()
		if err == nil && subs[channel] >= int64(n) {
			return caches
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers on %s: %v, %v; want %d", channel, subs, err, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
