package admission

import (
	"context"
	"sync"
	"time"
)

// probeInterval spaces the key probe's queries: however many unknown keys arrive, their
// existence costs at most one PostgreSQL query per interval. A key seen for the first time
// waits at most this long plus the query when others are probing; when the probe is idle
// it runs at once.
const probeInterval = 100 * time.Millisecond

// unknownKeyTTL bounds how long a key hash that exists in no api_keys row is refused from
// memory; short, like the key cache (CacheTTL), so that other instances agree soon.
const unknownKeyTTL = 10 * time.Second

// keyProbe answers "does a key with this hash exist?" for keys the key cache has not seen,
// batching every question asked meanwhile into one query (docs/security.md, "Nothing
// costly before authentication"). It runs a goroutine only while questions are pending.
type keyProbe struct {
	lookup   func(ctx context.Context, hashes []string) (map[string]bool, error)
	interval time.Duration

	mu      sync.Mutex
	pending map[string][]chan probeResult
	running bool
}

type probeResult struct {
	exists bool
	err    error
}

func newKeyProbe(lookup func(context.Context, []string) (map[string]bool, error), interval time.Duration) *keyProbe {
	return &keyProbe{lookup: lookup, interval: interval, pending: make(map[string][]chan probeResult)}
}

// exists waits for the batch that carries hash, or for ctx.
func (p *keyProbe) exists(ctx context.Context, hash string) (bool, error) {
	ch := make(chan probeResult, 1)
	p.mu.Lock()
	p.pending[hash] = append(p.pending[hash], ch)
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		go p.run()
	}
	select {
	case r := <-ch:
		return r.exists, r.err
	case <-ctx.Done():
		return false, ctx.Err() // the batch still answers into ch, which is buffered
	}
}

// run takes the pending questions in batches, one query per batch and at most one per
// interval, and ends when none are left.
func (p *keyProbe) run() {
	for {
		p.mu.Lock()
		batch := p.pending
		if len(batch) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.pending = make(map[string][]chan probeResult)
		p.mu.Unlock()

		hashes := make([]string, 0, len(batch))
		for h := range batch {
			hashes = append(hashes, h)
		}
		ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
		found, err := p.lookup(ctx, hashes)
		cancel()
		for h, waiters := range batch {
			for _, ch := range waiters {
				ch <- probeResult{exists: found[h], err: err}
			}
		}
		time.Sleep(p.interval)
	}
}

// KeysChanged forgets the unknown keys this process cached: the admin API calls it when a
// key is created. A new key's random hash cannot have been cached, so this is a guard for
// the rule "a key that exists is never refused from memory", not a fix of a known case;
// other instances forget theirs within unknownKeyTTL.
func (s *Admitter) KeysChanged() {
	s.unknownKeys.Invalidate()
}
