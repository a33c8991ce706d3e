// Package changes carries the admin API's writes to every controlsvc instance as targeted
// events: which key, user, group or account changed, by id. Admission's caches drop the
// entries of that entity only (never everything) when one arrives, so a change is in force
// on every instance within a Redis round trip; a missed event (Redis restarting, a
// subscription being re-established) is repaired by the caches' TTL (docs/design.md,
// "Caches").
package changes

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Channel is the Redis pub/sub channel of the events.
const Channel = "poolgate:changes"

// publishTimeout bounds one event's PUBLISH.
const publishTimeout = 2 * time.Second

// Kind names what changed.
type Kind string

// The entities admission caches.
const (
	Key     Kind = "key"
	User    Kind = "user"
	Group   Kind = "group"
	Account Kind = "account"
	// Members: the accounts of group ID changed (an account joined or left it).
	Members Kind = "members"
)

// Event is one entity's change.
type Event struct {
	Kind Kind
	ID   int64
}

func (e Event) String() string { return string(e.Kind) + ":" + strconv.FormatInt(e.ID, 10) }

// parse reads an event published by String; ok is false for anything else.
func parse(s string) (Event, bool) {
	kind, id, found := strings.Cut(s, ":")
	if !found {
		return Event{}, false
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return Event{}, false
	}
	switch k := Kind(kind); k {
	case Key, User, Group, Account, Members:
		return Event{Kind: k, ID: n}, true
	}
	return Event{}, false
}

// Bus publishes events and hands the ones of every instance (its own included) to its
// handlers.
type Bus struct {
	rdb redis.UniversalClient
	log *slog.Logger

	mu       sync.RWMutex
	handlers []func(Event)

	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
}

// New assembles a bus; it does no I/O until Start.
func New(rdb redis.UniversalClient, log *slog.Logger) *Bus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bus{rdb: rdb, log: log, stop: make(chan struct{}), done: make(chan struct{})}
}

// Subscribe adds a handler; handlers run on the bus's goroutine (or the publisher's, for
// its own events) and must not block.
func (b *Bus) Subscribe(h func(Event)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handlers = append(b.handlers, h)
}

func (b *Bus) deliver(e Event) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, h := range b.handlers {
		h(e)
	}
}

// Publish applies the change to this instance at once, then tells the others. The write
// it follows is already stored: a failed publish is returned, and the other instances
// then follow within their caches' TTL.
func (b *Bus) Publish(ctx context.Context, events ...Event) error {
	for _, e := range events {
		b.deliver(e)
	}
	if b.rdb == nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	pipe := b.rdb.Pipeline()
	for _, e := range events {
		pipe.Publish(pctx, Channel, e.String())
	}
	if _, err := pipe.Exec(pctx); err != nil {
		return fmt.Errorf("publishing %d changes: %w", len(events), err)
	}
	return nil
}

// Start runs the subscription until Close.
func (b *Bus) Start() {
	go b.run()
}

// Close stops the subscription and waits for it; call Start first. Safe to call twice.
func (b *Bus) Close() {
	b.closed.Do(func() { close(b.stop) })
	<-b.done
}

func (b *Bus) run() {
	defer close(b.done)
	if b.rdb == nil {
		<-b.stop
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := b.rdb.Subscribe(ctx, Channel)
	defer sub.Close()
	msgs := sub.Channel()
	for {
		select {
		case <-b.stop:
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			e, valid := parse(m.Payload)
			if !valid {
				b.log.Warn("ignoring unreadable change event", "payload", m.Payload)
				continue
			}
			b.deliver(e)
		}
	}
}
