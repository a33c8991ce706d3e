package rules

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Channel is the Redis pub/sub channel an instance publishes on after changing a rule; every
// instance subscribes and reloads, so a change is in force everywhere within a second.
const Channel = "pg:rules:changed"

// Defaults of the cache.
const (
	// DefaultRefresh is the safety-net reload interval: a missed message (Redis restarted,
	// subscription re-established) is repaired within this time.
	DefaultRefresh = 3 * time.Second
	// loadTimeout bounds one reload.
	loadTimeout = 5 * time.Second
	// publishTimeout bounds the change notification of one admin write.
	publishTimeout = 2 * time.Second
)

// Loader reads every stored rule; *store.Store implements it.
type Loader interface {
	ListPassthroughRules(ctx context.Context) ([]store.PassthroughRule, error)
}

var _ Loader = (*store.Store)(nil)

// Cache holds the current rule set of this process. Readers never wait on the database: they
// get the last loaded set. Run keeps it fresh; Changed tells every instance to reload.
type Cache struct {
	loader  Loader
	rdb     redis.UniversalClient
	refresh time.Duration
	log     *slog.Logger

	set    atomic.Pointer[Set]
	wake   chan struct{} // a reload is wanted; buffered 1, so requests coalesce
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
}

// NewCache assembles a cache with an empty rule set; it does no I/O. refresh <= 0 means
// DefaultRefresh.
func NewCache(loader Loader, rdb redis.UniversalClient, refresh time.Duration, log *slog.Logger) *Cache {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		loader: loader, rdb: rdb, refresh: refresh, log: log,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	c.set.Store(&Set{})
	return c
}

// Rules returns the current rule set.
func (c *Cache) Rules() *Set { return c.set.Load() }

// Load reads the rules from the database and makes them current.
func (c *Cache) Load(ctx context.Context) error {
	stored, err := c.loader.ListPassthroughRules(ctx)
	if err != nil {
		return fmt.Errorf("loading error passthrough rules: %w", err)
	}
	c.set.Store(NewSet(stored))
	return nil
}

// Changed is called after a rule was written: it reloads this instance at once and tells
// the others. A failed publish is returned; the others then catch up within the refresh
// interval.
func (c *Cache) Changed(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	if err := c.Load(lctx); err != nil {
		c.requestReload()
		return err
	}
	pctx, cancel2 := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel2()
	if err := c.rdb.Publish(pctx, Channel, "1").Err(); err != nil {
		return fmt.Errorf("publishing rule change: %w", err)
	}
	return nil
}

func (c *Cache) requestReload() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Start runs the subscription and the periodic reload until Close.
func (c *Cache) Start() {
	go c.run()
}

// Close stops the background work and waits for it. Safe to call twice; call Start first.
func (c *Cache) Close() {
	c.closed.Do(func() { close(c.stop) })
	<-c.done
}

func (c *Cache) run() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := c.rdb.Subscribe(ctx, Channel)
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

func (c *Cache) reload(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	if err := c.Load(lctx); err != nil {
		// The previous set stays in force; the next tick tries again.
		c.log.Warn("reloading error passthrough rules", "error", err)
	}
}
