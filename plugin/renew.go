package plugin

import (
	"context"
	"sync"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Lease renewal (docs/design.md): leases expire after 60 s unless renewed.
const (
	renewInterval = 15 * time.Second
	renewTimeout  = 5 * time.Second
	// leaseCapMargin is what a lease may be renewed for beyond its request's own bounds
	// (requestTimeout + drainTimeout): the time to write the last event and the report.
	leaseCapMargin = 60 * time.Second
)

// renewal is one registered lease and the time after which it is never renewed again (zero:
// no such time). A request that outlives its bounds — a goroutine stuck in a write nobody
// can interrupt, a bug — then loses its slots within a lease TTL of that time.
type renewal struct {
	l     lease
	until time.Time
}

// renewer keeps the leases of live grants alive: every interval it renews all of them in one
// POST /internal/v1/renew. A failed call is not retried; the next tick covers it, well
// within the leases' 60 s TTL.
type renewer struct {
	client   *controlClient
	interval time.Duration

	mu      sync.Mutex
	leases  map[string]renewal
	running bool

	stopped   bool // close was called (under mu)
	startOnce sync.Once
	closeOnce sync.Once
	wake      *wakeup
	done      chan struct{}
}

func newRenewer(client *controlClient, interval time.Duration) *renewer {
	return &renewer{
		client:   client,
		interval: interval,
		leases:   make(map[string]renewal),
		wake:     newWakeup(),
		done:     make(chan struct{}),
	}
}

// register adds or updates (after re-admission to another account) a live grant, to be
// renewed until the time until (zero: as long as it is registered).
func register(rn *renewer, l lease, until time.Time) {
	rn.startOnce.Do(func() {
		rn.mu.Lock()
		rn.running = true
		rn.mu.Unlock()
		go rn.run()
	})
	rn.mu.Lock()
	rn.leases[l.GrantID] = renewal{l: l, until: until}
	rn.mu.Unlock()
}

// unregister forgets a grant at completion.
func unregister(rn *renewer, grantID string) {
	rn.mu.Lock()
	delete(rn.leases, grantID)
	rn.mu.Unlock()
}

// snapshot returns the leases to renew now and forgets those past their cap.
func snapshot(rn *renewer, now time.Time) []lease {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	out := make([]lease, 0, len(rn.leases))
	for id, r := range rn.leases {
		if !r.until.IsZero() && now.After(r.until) {
			delete(rn.leases, id)
			continue
		}
		out = append(out, r.l)
		if r.l.Hedged > 0 {
			out = append(out, lease{GrantID: r.l.GrantID, UserID: r.l.UserID, AccountID: r.l.Hedged})
		}
	}
	return out
}

func (rn *renewer) run() {
	defer close(rn.done)
	defer func() { _ = recover() }() // a panic here must not take Traefik down
	next := time.Now().Add(rn.interval)
	for {
		rn.wake.wait(time.Until(next))
		rn.mu.Lock()
		stopped := rn.stopped
		rn.mu.Unlock()
		if stopped {
			return
		}
		if time.Now().Before(next) {
			continue // a spurious wake (wakeup)
		}
		next = time.Now().Add(rn.interval)
		renew(rn)
	}
}

func renew(rn *renewer) {
	leases := snapshot(rn, time.Now())
	if len(leases) == 0 {
		return
	}
	body, err := jsonsse.Encode(renewBatch{Leases: leases})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
	defer cancel()
	_, _, _, _ = post(rn.client, ctx, renewPath, body)
}

func (rn *renewer) close() {
	rn.closeOnce.Do(func() {
		rn.startOnce.Do(func() {})
		rn.mu.Lock()
		running := rn.running
		rn.stopped = true
		rn.mu.Unlock()
		rn.wake.raise()
		if running {
			<-rn.done
		}
	})
}
