package plugin

import (
	"context"
	"sync"
	"time"
)

// Lease renewal (docs/design.md): leases expire after 60 s unless renewed.
const (
	renewInterval = 15 * time.Second
	renewTimeout  = 5 * time.Second
)

// renewer keeps the leases of live grants alive: every interval it renews all of them in one
// POST /internal/v1/renew. A failed call is not retried; the next tick covers it, well
// within the leases' 60 s TTL.
type renewer struct {
	client   *controlClient
	interval time.Duration

	mu      sync.Mutex
	leases  map[string]lease
	running bool

	startOnce sync.Once
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

func newRenewer(client *controlClient, interval time.Duration) *renewer {
	return &renewer{
		client:   client,
		interval: interval,
		leases:   make(map[string]lease),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// register adds or updates (after re-admission to another account) a live grant.
func (rn *renewer) register(l lease) {
	rn.startOnce.Do(func() {
		rn.mu.Lock()
		rn.running = true
		rn.mu.Unlock()
		go rn.run()
	})
	rn.mu.Lock()
	rn.leases[l.GrantID] = l
	rn.mu.Unlock()
}

// unregister forgets a grant at completion.
func (rn *renewer) unregister(grantID string) {
	rn.mu.Lock()
	delete(rn.leases, grantID)
	rn.mu.Unlock()
}

func (rn *renewer) snapshot() []lease {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	out := make([]lease, 0, len(rn.leases))
	for _, l := range rn.leases {
		out = append(out, l)
	}
	return out
}

func (rn *renewer) run() {
	defer close(rn.done)
	defer func() { _ = recover() }() // a panic here must not take Traefik down
	ticker := time.NewTicker(rn.interval)
	defer ticker.Stop()
	for {
		select {
		case <-rn.stop:
			return
		case <-ticker.C:
			rn.renew()
		}
	}
}

func (rn *renewer) renew() {
	leases := rn.snapshot()
	if len(leases) == 0 {
		return
	}
	body, err := encodeJSON(renewBatch{Leases: leases})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
	defer cancel()
	_, _, _, _ = rn.client.post(ctx, renewPath, body)
}

func (rn *renewer) close() {
	rn.closeOnce.Do(func() {
		rn.startOnce.Do(func() {})
		rn.mu.Lock()
		running := rn.running
		rn.mu.Unlock()
		close(rn.stop)
		if running {
			<-rn.done
		}
	})
}
