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
	// reportMaxInFlight bounds the batches in flight at once. More than one, so that a batch
	// whose database write is slow does not hold back the slot releases of the next ones
	// (controlsvc releases a batch's slots before it writes the batch).
	reportMaxInFlight = 2
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
// soon as a sender is free; reports that arrive while batches are in flight form the next
// batch (up to maxBatch), with at most maxInFlight batches in flight. So an idle gateway
// releases a finished request's slots after one round trip, and a busy one sends few, large
// batches. A batch that is not acknowledged goes back to the head of the queue, and nothing
// is sent until its backoff has passed.
//
// Only the package-level run goroutine executes a select (Yaegi v0.16.1 races when one
// select statement runs in two goroutines at once, see docs/design.md): request goroutines
// and senders wake it through a one-slot channel guarded by the notified flag, so their send
// never blocks and needs no select.
type reporter struct {
	client      *controlClient
	maxBatch    int
	maxSpool    int
	maxInFlight int

	mu       sync.Mutex
	queue    []report
	dropped  int64
	running  bool // run was started
	closed   bool // close was called: run is never started after it
	inFlight int
	backoff  time.Duration
	retryAt  time.Time // no batch goes out before this, after a failure
	notified bool      // a wake-up is in the channel and not yet taken by run

	senders   sync.WaitGroup
	closeOnce sync.Once
	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
}

func newReporter(client *controlClient, maxBatch, maxSpool int) *reporter {
	return &reporter{
		client:      client,
		maxBatch:    maxBatch,
		maxSpool:    maxSpool,
		maxInFlight: reportMaxInFlight,
		backoff:     reportBackoffLo,
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
}

// enqueue hands r to the sender; it never blocks the request path.
// The sender goroutine starts on the first report (New must not start goroutines).
func (rp *reporter) enqueue(r report) {
	rp.mu.Lock()
	start := !rp.running && !rp.closed
	if start {
		rp.running = true
	}
	rp.queue = append(rp.queue, r)
	rp.trimLocked()
	wake := rp.notifyLocked()
	rp.mu.Unlock()
	if start {
		go rp.run()
	}
	if wake {
		rp.wake <- struct{}{} // cannot block: the channel is empty unless notified was set
	}
}

// notifyLocked reports whether the caller must put a wake-up into the channel (after
// unlocking): only when none is pending, so the one-slot channel never fills up.
func (rp *reporter) notifyLocked() bool {
	if rp.notified {
		return false
	}
	rp.notified = true
	return true
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

// run dispatches batches until stopped: it sleeps while idle, while every sender is busy or
// during a backoff, and starts a sender per batch while the queue has reports and a sender
// is free.
func (rp *reporter) run() {
	defer close(rp.done)
	defer func() { _ = recover() }() // a panic here must not take Traefik down
	for {
		wait := rp.dispatch()
		if !rp.wait(wait) {
			rp.senders.Wait()
			rp.flushAll()
			return
		}
	}
}

// wait sleeps until a wake-up, the end of a backoff (d > 0) or stop; false means stopped.
func (rp *reporter) wait(d time.Duration) bool {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-rp.stop:
		return false
	case <-rp.wake:
		rp.mu.Lock()
		rp.notified = false // before dispatch reads the queue: no wake-up is lost
		rp.mu.Unlock()
	case <-timeout:
	}
	return true
}

// dispatch starts senders for queued batches while senders are free. During a backoff it
// starts none and returns how long is left.
func (rp *reporter) dispatch() time.Duration {
	for {
		rp.mu.Lock()
		if len(rp.queue) == 0 || rp.inFlight >= rp.maxInFlight {
			rp.mu.Unlock()
			return 0
		}
		if left := time.Until(rp.retryAt); left > 0 {
			rp.mu.Unlock()
			return left
		}
		batch := rp.takeLocked()
		rp.inFlight++
		rp.mu.Unlock()
		rp.senders.Add(1)
		go rp.sendAsync(batch)
	}
}

// takeLocked removes the oldest batch from the queue.
func (rp *reporter) takeLocked() []report {
	n := len(rp.queue)
	if n > rp.maxBatch {
		n = rp.maxBatch
	}
	batch := make([]report, n)
	copy(batch, rp.queue[:n])
	rp.queue = append(rp.queue[:0], rp.queue[n:]...)
	return batch
}

// sendAsync sends one batch. An unacknowledged batch goes back to the head of the queue and
// starts a backoff that doubles up to reportBackoffHi; an acknowledged one resets it.
func (rp *reporter) sendAsync(batch []report) {
	defer rp.senders.Done()
	ok := false
	defer func() {
		_ = recover()
		rp.mu.Lock()
		rp.inFlight--
		if ok {
			rp.backoff = reportBackoffLo
		} else {
			rp.queue = append(batch, rp.queue...)
			rp.trimLocked()
			rp.retryAt = time.Now().Add(rp.backoff)
			rp.backoff *= 2
			if rp.backoff > reportBackoffHi {
				rp.backoff = reportBackoffHi
			}
		}
		wake := rp.notifyLocked()
		rp.mu.Unlock()
		if wake {
			rp.wake <- struct{}{}
		}
	}()
	ok = rp.send(batch)
}

// requeue puts an unacknowledged batch back at the head of the queue.
func (rp *reporter) requeue(batch []report) {
	rp.mu.Lock()
	rp.queue = append(batch, rp.queue...)
	rp.trimLocked()
	rp.mu.Unlock()
}

func (rp *reporter) pending() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return len(rp.queue)
}

// flushOne sends the oldest batch in the caller's goroutine (used when stopping). On
// failure the batch goes back to the head of the queue.
func (rp *reporter) flushOne() bool {
	rp.mu.Lock()
	batch := rp.takeLocked()
	rp.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	if rp.send(batch) {
		return true
	}
	rp.requeue(batch)
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

// close stops the sender after a last flush attempt; a reporter that never started stays
// stopped.
func (rp *reporter) close() {
	rp.closeOnce.Do(func() {
		rp.mu.Lock()
		rp.closed = true
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
