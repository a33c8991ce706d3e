package admission

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// Wait queue defaults (docs/design.md, "POST /internal/v1/admit").
const (
	DefaultUserMaxWaiters      = 20
	DefaultUserWaitTimeout     = 30 * time.Second
	DefaultStickyMaxWaiters    = 3
	DefaultStickyWaitTimeout   = 120 * time.Second
	DefaultFallbackMaxWaiters  = 100
	DefaultFallbackWaitTimeout = 30 * time.Second

	// waitRecheck is the safety re-check of a waiter: it repairs a lost wake-up message and
	// notices leases that expired (a crashed gateway) rather than being released.
	waitRecheck = time.Second
	// waitEntryMargin keeps a queue entry alive a little past its waiter's timeout; after
	// that the entry of a waiter whose controlsvc died leaves the queue by itself.
	waitEntryMargin = 5 * time.Second
)

// WaitConfig sets the wait queues. Zero fields take the defaults; a negative MaxWaiters
// disables that queue (a full set refuses at once).
type WaitConfig struct {
	UserMaxWaiters     int
	UserTimeout        time.Duration
	StickyMaxWaiters   int
	StickyTimeout      time.Duration
	FallbackMaxWaiters int
	FallbackTimeout    time.Duration
}

func (c WaitConfig) withDefaults() WaitConfig {
	pick := func(v, def int) int {
		if v == 0 {
			return def
		}
		if v < 0 {
			return 0
		}
		return v
	}
	dur := func(v, def time.Duration) time.Duration {
		if v <= 0 {
			return def
		}
		return v
	}
	return WaitConfig{
		UserMaxWaiters:     pick(c.UserMaxWaiters, DefaultUserMaxWaiters),
		UserTimeout:        dur(c.UserTimeout, DefaultUserWaitTimeout),
		StickyMaxWaiters:   pick(c.StickyMaxWaiters, DefaultStickyMaxWaiters),
		StickyTimeout:      dur(c.StickyTimeout, DefaultStickyWaitTimeout),
		FallbackMaxWaiters: pick(c.FallbackMaxWaiters, DefaultFallbackMaxWaiters),
		FallbackTimeout:    dur(c.FallbackTimeout, DefaultFallbackWaitTimeout),
	}
}

// Outcomes of a wait that did not end with a slot.
var (
	errWaitTimeout   = errors.New("wait timed out")
	errWaitQueueFull = errors.New("wait queue full")
	// errShuttingDown: the service is stopping and takes no new waits (BeginShutdown).
	errShuttingDown = errors.New("shutting down")
)

// waker holds the local waiters of this controlsvc per slot set and wakes them when a
// FreedChannel message names their set. One subscription serves the whole process.
type waker struct {
	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	ps      *redis.PubSub
	done    chan struct{}
	log     *slog.Logger
}

func newWaker(rdb redis.UniversalClient, log *slog.Logger) *waker {
	w := &waker{
		waiters: make(map[string]map[chan struct{}]struct{}),
		ps:      rdb.Subscribe(context.Background(), slots.FreedChannel),
		done:    make(chan struct{}),
		log:     log,
	}
	go w.run()
	return w
}

// run wakes the waiters of each announced set. go-redis resubscribes after a lost
// connection; messages sent meanwhile are lost, which the waiters' re-check repairs.
func (w *waker) run() {
	defer close(w.done)
	for msg := range w.ps.Channel() {
		w.wake(msg.Payload)
	}
}

func (w *waker) wake(tag string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.waiters[tag] {
		select {
		case ch <- struct{}{}:
		default: // already has a wake-up pending
		}
	}
}

// register adds a local waiter of the set tag; the returned func removes it.
func (w *waker) register(tag string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	set := w.waiters[tag]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		w.waiters[tag] = set
	}
	set[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(set, ch)
		if len(set) == 0 && w.waiters[tag] != nil && len(w.waiters[tag]) == 0 {
			delete(w.waiters, tag) // the map of a set nobody here waits for
		}
		w.mu.Unlock()
	}
}

func (w *waker) close() {
	if err := w.ps.Close(); err != nil {
		w.log.Warn("closing slot subscription", "error", err)
	}
	<-w.done
}

// waitBudgetKey carries the deadline of an admission's waits in its context.
type waitBudgetKey struct{}

// withWaitBudget bounds the total time one admit call may spend in wait queues, whatever
// the queues' own timeouts: the plugin sends the budget (max_wait_ms) and bounds the call by
// it plus its admission timeout, so an admission always answers before the plugin gives up.
func withWaitBudget(ctx context.Context, budget time.Duration) context.Context {
	return context.WithValue(ctx, waitBudgetKey{}, time.Now().Add(budget))
}

// budgeted shortens a queue's timeout to what is left of the admission's wait budget (can
// be 0 or less: no waiting).
func budgeted(ctx context.Context, timeout time.Duration) time.Duration {
	if until, ok := ctx.Value(waitBudgetKey{}).(time.Time); ok {
		if left := time.Until(until); left < timeout {
			return left
		}
	}
	return timeout
}

// waitSlot waits up to timeout (shortened to the admission's wait budget) for e's grant to
// get a slot in FIFO order, queueing it if it is not queued yet. It returns nil once the
// grant holds the slot, errWaitQueueFull when it could not queue, errWaitTimeout,
// errShuttingDown once the service stops, or the context's error when the caller went away;
// in every case but success the grant's queue entry is gone when it returns.
func (s *Admitter) waitSlot(ctx context.Context, e slots.Entry, timeout time.Duration) error {
	tag, err := slots.Tag(e.Kind, e.ID)
	if err != nil {
		return err
	}
	if timeout = budgeted(ctx, timeout); timeout < 0 {
		timeout = 0 // one more try at the slot, then the timeout refusal
	}
	e.WaitTTL = timeout + waitEntryMargin
	wake, unregister := s.waker.register(tag)
	defer unregister()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recheck := time.NewTicker(waitRecheck)
	defer recheck.Stop()
	for {
		// Registered before this check, so a release between the check and the wait below
		// still wakes us.
		res, err := s.slots.Enter(ctx, e)
		switch {
		case err != nil:
			s.leaveQueue(ctx, e)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		case res == slots.Held:
			return nil
		case res == slots.Refused:
			return errWaitQueueFull
		case s.ShuttingDown():
			s.leaveQueue(ctx, e)
			return errShuttingDown
		}
		select {
		case <-s.stopping:
			s.leaveQueue(ctx, e)
			return errShuttingDown
		case <-ctx.Done():
			s.leaveQueue(ctx, e)
			return ctx.Err()
		case <-deadline.C:
			s.leaveQueue(ctx, e)
			return errWaitTimeout
		case <-wake:
		case <-recheck.C:
		}
	}
}

// leaveQueue takes e's grant out of the set (queue entry and, should a last Enter have
// raced with the caller's departure, its lease), detached from the possibly cancelled
// request; the script wakes the waiters behind it.
func (s *Admitter) leaveQueue(ctx context.Context, e slots.Entry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	if err := s.slots.Leave(ctx, e.Kind, e.ID, e.GrantID); err != nil {
		s.log.Warn("leaving wait queue", "kind", e.Kind, "id", e.ID, "error", err)
	}
}

// BeginShutdown makes the service refuse new waits and ends the waits under way: their admit
// calls, and new first admissions, are answered 503 shutting_down with Retry-After, which the
// plugin retries on another instance. Admissions under way that do not wait, re-admissions
// that need not wait, reports and renewals go on, so that the HTTP server's graceful shutdown
// can let them finish. Safe to call twice.
func (s *Admitter) BeginShutdown() {
	s.stopOnce.Do(func() { close(s.stopping) })
}

// ShuttingDown reports whether BeginShutdown was called.
func (s *Admitter) ShuttingDown() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}
