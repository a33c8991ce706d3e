package plugin

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Report batching (docs/design.md): one package-level reporter per controlsvc with one
// goroutine, started on first use and stopped by close.
const (
	reportMaxBatch = 256
	// reportMaxSpool bounds the reports held while controlsvc does not acknowledge; the
	// oldest are dropped beyond it (and counted), leases then expire by TTL.
	reportMaxSpool  = 10000
	reportTimeout   = 10 * time.Second
	reportBackoffLo = 100 * time.Millisecond
	reportBackoffHi = 5 * time.Second
)

// report builds the completion record of the exchange's grant.
func (x *exchange) report() report {
	g := x.grant
	r := report{
		GrantID:       g.GrantID,
		RequestID:     x.requestID,
		UserID:        g.UserID,
		APIKeyID:      g.APIKeyID,
		GroupID:       g.GroupID,
		AccountID:     g.AccountID,
		Path:          x.path,
		Model:         x.info.model,
		UpstreamModel: g.UpstreamModel,
		Stream:        x.info.stream,
		Status:        x.status,
		ErrorClass:    x.errorClass,
		UsageFormat:   usageFormatFor(x.path),
		Usage:         rawJSON(x.usage),
		DurationMs:    millisSince(x.start),
		Attempts:      x.attempts,
	}
	if r.Attempts == nil {
		r.Attempts = make([]attemptReport, 0)
	}
	if !x.firstByte.IsZero() {
		r.FirstTokenMs = int64(x.firstByte.Sub(x.start) / time.Millisecond)
	}
	return r
}

// reporter batches completion reports into POST /internal/v1/reports. A report goes out as
// soon as the sender is free; reports that arrive while a batch is in flight form the next
// batch (up to maxBatch). So an idle gateway releases a finished request's slots after one
// round trip, and a busy one sends few, large batches. Batches are retried with backoff
// until acknowledged.
type reporter struct {
	client   *controlClient
	maxBatch int
	maxSpool int

	mu      sync.Mutex
	queue   []report
	dropped int64
	running bool

	startOnce sync.Once
	closeOnce sync.Once
	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
}

func newReporter(client *controlClient, maxBatch, maxSpool int) *reporter {
	return &reporter{
		client:   client,
		maxBatch: maxBatch,
		maxSpool: maxSpool,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// enqueue hands r to the sender; it never blocks the request path.
func (rp *reporter) enqueue(r report) {
	rp.startOnce.Do(func() {
		rp.mu.Lock()
		rp.running = true
		rp.mu.Unlock()
		go rp.run()
	})
	rp.mu.Lock()
	rp.queue = append(rp.queue, r)
	rp.trimLocked()
	rp.mu.Unlock()
	select {
	case rp.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// trimLocked drops the oldest reports beyond the spool bound.
func (rp *reporter) trimLocked() {
	if over := len(rp.queue) - rp.maxSpool; over > 0 {
		rp.queue = append(rp.queue[:0], rp.queue[over:]...)
		rp.dropped += int64(over)
	}
}

// droppedCount returns how many reports were dropped because the spool was full.
func (rp *reporter) droppedCount() int64 {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.dropped
}

// run sends batches until stopped: it sleeps on wake while idle and drains the queue once a
// report arrives.
func (rp *reporter) run() {
	defer close(rp.done)
	defer func() { _ = recover() }() // a panic here must not take Traefik down
	for {
		select {
		case <-rp.stop:
			rp.flushAll()
			return
		case <-rp.wake:
		}
		if !rp.drain() {
			rp.flushAll()
			return
		}
	}
}

// drain sends batches until the queue is empty, backing off while controlsvc does not
// acknowledge; false means stopped.
func (rp *reporter) drain() bool {
	backoff := reportBackoffLo
	for rp.pending() > 0 {
		if rp.flushOne() {
			backoff = reportBackoffLo
			continue
		}
		if !rp.sleep(backoff) {
			return false
		}
		backoff *= 2
		if backoff > reportBackoffHi {
			backoff = reportBackoffHi
		}
	}
	return true
}

func (rp *reporter) pending() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return len(rp.queue)
}

// flushOne sends the oldest batch. On failure the batch goes back to the head of the queue.
func (rp *reporter) flushOne() bool {
	rp.mu.Lock()
	n := len(rp.queue)
	if n > rp.maxBatch {
		n = rp.maxBatch
	}
	batch := make([]report, n)
	copy(batch, rp.queue[:n])
	rp.queue = append(rp.queue[:0], rp.queue[n:]...)
	rp.mu.Unlock()
	if n == 0 {
		return true
	}
	if rp.send(batch) {
		return true
	}
	rp.mu.Lock()
	rp.queue = append(batch, rp.queue...)
	rp.trimLocked()
	rp.mu.Unlock()
	return false
}

// send posts one batch; true means controlsvc acknowledged it. A 400 can never succeed, so
// that batch is dropped (and counted) rather than blocking every later report.
func (rp *reporter) send(batch []report) bool {
	body, err := encodeJSON(reportBatch{Reports: batch})
	if err != nil {
		rp.countDropped(len(batch))
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	status, _, _, err := rp.client.post(ctx, reportsPath, body)
	if err != nil {
		return false
	}
	if status == http.StatusBadRequest {
		rp.countDropped(len(batch))
		return true
	}
	return status == http.StatusOK
}

func (rp *reporter) countDropped(n int) {
	rp.mu.Lock()
	rp.dropped += int64(n)
	rp.mu.Unlock()
}

// flushAll makes one last pass over the queue when stopping.
func (rp *reporter) flushAll() {
	for rp.pending() > 0 {
		if !rp.flushOne() {
			return
		}
	}
}

// sleep waits d; false means the reporter was stopped meanwhile.
func (rp *reporter) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-rp.stop:
		return false
	}
}

// close stops the sender after a last flush attempt; a reporter that never started stays
// stopped.
func (rp *reporter) close() {
	rp.closeOnce.Do(func() {
		rp.startOnce.Do(func() {})
		rp.mu.Lock()
		running := rp.running
		rp.mu.Unlock()
		close(rp.stop)
		if !running {
			return
		}
		select {
		case <-rp.done:
		case <-time.After(reportTimeout):
		}
	})
}
