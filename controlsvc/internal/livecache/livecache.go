// Package livecache keeps a value loaded from the database current in every controlsvc
// instance: readers get the last loaded value without waiting, an admin write reloads this
// instance at once and tells the others over Redis pub/sub, and a periodic reload repairs a
// missed message. Error passthrough rules and model prices use it.
package livecache

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of a cache.
const (
	// DefaultRefresh is the safety-net reload interval: a missed message (Redis restarted,
	// subscription re-established) is repaired within this time.
	DefaultRefresh = 3 * time.Second
	// loadTimeout bounds one reload.
	loadTimeout = 5 * time.Second
	// publishTimeout bounds the change notification of one admin write.
	publishTimeout = 2 * time.Second
)

// Cache holds the current value of type T for this process. What names what it holds in
// errors and logs ("error passthrough rules", "model prices").
type Cache[T any] struct {
	what    string
	channel string
	load    func(context.Context) (T, error)
	rdb     redis.UniversalClient
	refresh time.Duration
	log     *slog.Logger

	cur    atomic.Pointer[T]
	wake   chan struct{} // a reload is wanted; buffered 1, so requests coalesce
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
}

// New assembles a cache holding initial; it does no I/O. channel is the Redis pub/sub
// channel of change notifications; refresh <= 0 means DefaultRefresh.
func New[T any](what, channel string, initial T, load func(context.Context) (T, error),
	rdb redis.UniversalClient, refresh time.Duration, log *slog.Logger) *Cache[T] {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache[T]{
		what: what, channel: channel, load: load, rdb: rdb, refresh: refresh, log: log,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	c.cur.Store(&initial)
	return c
}

// Get returns the current value.
func (c *Cache[T]) Get() T { return *c.cur.Load() }

// Load reads the value from the database and makes it current.
func (c *Cache[T]) Load(ctx context.Context) error {
	v, err := c.load(ctx)
	if err != nil {
		return fmt.Errorf("loading %s: %w", c.what, err)
	}
	c.cur.Store(&v)
	return nil
}

// Changed is called after an admin write: it reloads this instance at once and tells the
// others. A failed publish is returned; the others then catch up within the refresh
// interval.
func (c *Cache[T]) Changed(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	if err := c.Load(lctx); err != nil {
		c.requestReload()
		return err
	}
	pctx, cancel2 := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel2()
	if err := c.rdb.Publish(pctx, c.channel, "1").Err(); err != nil {
		return fmt.Errorf("publishing change of %s: %w", c.what, err)
	}
	return nil
}

func (c *Cache[T]) requestReload() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Start runs the subscription and the periodic reload until Close.
func (c *Cache[T]) Start() {
	go c.run()
}

// Close stops the background work and waits for it. Safe to call twice; call Start first.
func (c *Cache[T]) Close() {
	c.closed.Do(func() { close(c.stop) })
	<-c.done
}

func (c *Cache[T]) run() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := c.rdb.Subscribe(ctx, c.channel)
	defer sub.Close()
	// Subscription confirmations arrive on the channel too: a (re)subscribe may follow
	// missed messages, so it triggers a reload as well.
	msgs := sub.ChannelWithSubscriptions()
	tick := time.NewTicker(c.refresh)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-msgs:
		case <-tick.C:
		case <-c.wake:
		}
		c.reload(ctx)
	}
}

func (c *Cache[T]) reload(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	if err := c.Load(lctx); err != nil {
		// The previous value stays in force; the next tick tries again.
		c.log.Warn("reload failed", "what", c.what, "error", err)
	}
}
