package plugin

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// Report batching (docs/design.md): one package-level reporter per controlsvc with one
// goroutine, started on first use and stopped by close.
const (
	reportMaxBatch = 256
	// reportMaxInFlight bounds the batches in flight at once. More than one, so that a batch
	// whose database write is slow does not hold back the slot releases of the next ones
	// (controlsvc releases a batch's slots before it writes the batch).
	reportMaxInFlight = 2
	reportTimeout     = 10 * time.Second
	reportBackoffLo   = 100 * time.Millisecond
	reportBackoffHi   = 5 * time.Second
)

// Usage sources of a report.
const (
	usageSourceUpstream = "upstream"
	usageSourceEstimate = "estimate"
)

// buildReport builds the completion record of the exchange's grant.
func buildReport(x *exchange) report {
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
		ServedModel:   g.ServedModel,
		Stream:        x.info.stream,
		Status:        x.status,
		ErrorClass:    x.errorClass,
		UsageFormat:   reportUsageFormat(x),
		Usage:         rawJSON(x.usage),
		AdmissionMs:   millis(x.admitting),
		Attempts:      x.attempts,

		UsageSource:     usageSourceUpstream,
		InputBytes:      x.inputBytes,
		MaxOutputTokens: x.info.maxOutputTokens,
		OutputBytes:     x.outputBytes,
	}
	if x.convTools != nil {
		r.Warnings = x.convTools.Warnings()
	}
	if x.billable && !x.usageComplete {
		r.UsageSource = usageSourceEstimate // never zero billing facts for a committed attempt
	}
	end := time.Now()
	r.DurationMs = millis(end.Sub(x.start))
	if !x.firstSend.IsZero() {
		r.UpstreamMs = millis(end.Sub(x.firstSend) - x.readmitting)
	}
	if r.Attempts == nil {
		r.Attempts = make([]attemptReport, 0)
	}
	if !x.firstByte.IsZero() {
		r.FirstTokenMs = millis(x.firstByte.Sub(x.start))
		if n := len(r.Attempts); n > 0 && !x.attemptSent.IsZero() {
			// Output only ever comes from the answering attempt, the last.
			r.Attempts[n-1].FirstTokenMs = millis(x.firstByte.Sub(x.attemptSent))
		}
	}
	return r
}

// countAdmission adds the time of one admit call to the report's admission time; after
// the first upstream send it is a re-admission, which the upstream time leaves out.
func countAdmission(x *exchange, d time.Duration) {
	x.admitting += d
	if !x.firstSend.IsZero() {
		x.readmitting += d
	}
}

// millis is d in whole milliseconds, never negative.
func millis(d time.Duration) int64 {
	if d < 0 {
		return 0
	}
	return int64(d / time.Millisecond)
}

// reporter batches completion reports into POST /internal/v1/reports. A report goes out as
// soon as a sender is free; reports that arrive while batches are in flight form the next
// batch (up to maxBatch), with at most maxInFlight batches in flight. So an idle gateway
// releases a finished request's slots after one round trip, and a busy one sends few, large
// batches. A batch that is not acknowledged goes back into the queue in its place, and
// nothing is sent until its backoff has passed: a controlsvc that is down or restarting costs
// retries, never a report. Only a full spool drops reports, the oldest first
// (report_spool.go).
//
// No select statement anywhere (Yaegi v0.16.1 races when one select statement runs in two
// goroutines at once, and there is one run goroutine per control service address list, see
// docs/design.md): request goroutines, senders, backoff timers and close wake run through
// a wakeup (wakeup.go), which never blocks them.
type reporter struct {
	client      *controlClient
	maxBatch    int
	maxSpool    int
	maxInFlight int
	// logf writes one log line; logDropsEvery spaces the lines about dropped reports.
	logf          func(line string)
	logDropsEvery time.Duration

	mu       sync.Mutex
	queue    []spooled // in the order of enqueueing (seq), oldest first
	seq      uint64    // seq of the last report enqueued
	drops    dropCounts
	running  bool // run was started
	closed   bool // close was called: run is never started after it
	inFlight int
	backoff  time.Duration
	retryAt  time.Time // no batch goes out before this, after a failure

	senders   sync.WaitGroup
	closeOnce sync.Once
	wake      *wakeup
	done      chan struct{}
}

func newReporter(client *controlClient, maxBatch, maxSpool int) *reporter {
	return &reporter{
		client:        client,
		maxBatch:      maxBatch,
		maxSpool:      maxSpool,
		maxInFlight:   reportMaxInFlight,
		logf:          logLine,
		logDropsEvery: reportDropLogEvery,
		backoff:       reportBackoffLo,
		wake:          newWakeup(),
		done:          make(chan struct{}),
	}
}

// enqueue hands r to the sender; it never blocks the request path.
// The sender goroutine starts on the first report (New must not start goroutines).
func enqueue(rp *reporter, r report) {
	rp.mu.Lock()
	start := !rp.running && !rp.closed
	if start {
		rp.running = true
	}
	rp.seq++
	rp.queue = append(rp.queue, spooled{seq: rp.seq, r: r})
	trimLocked(rp)
	rp.mu.Unlock()
	if start {
		go rp.run()
	}
	rp.wake.raise() // after the append: the wait it ends comes before dispatch reads the queue
}

// run dispatches batches until stopped: it sleeps while idle, while every sender is busy or
// during a backoff, and starts a sender per batch while the queue has reports and a sender
// is free. It also writes the rate-limited log lines about dropped reports.
func (rp *reporter) run() {
	defer close(rp.done)
	defer func() { _ = recover() }() // a panic here must not take Traefik down
	for {
		wait := dispatch(rp)
		if next := logDrops(rp, time.Now()); next > 0 && (wait == 0 || next < wait) {
			wait = next
		}
		if !rp.wait(wait) {
			rp.senders.Wait()
			flushAll(rp)
			logDrops(rp, time.Time{}) // stopping: whatever is left, now
			return
		}
	}
}

// wait sleeps until a wake-up, the end of a backoff (d > 0) or close; false means closed.
// No select statement: see wakeup.go.
func (rp *reporter) wait(d time.Duration) bool {
	rp.wake.wait(d)
	rp.mu.Lock()
	closed := rp.closed
	rp.mu.Unlock()
	return !closed
}

// dispatch starts senders for queued batches while senders are free. During a backoff it
// starts none and returns how long is left.
func dispatch(rp *reporter) time.Duration {
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
		batch := takeLocked(rp)
		rp.inFlight++
		rp.mu.Unlock()
		rp.senders.Add(1)
		go sendAsync(rp, batch)
	}
}

// sendAsync sends one batch. An unacknowledged batch goes back into the queue and
// starts a backoff that doubles up to reportBackoffHi; an acknowledged one resets it.
func sendAsync(rp *reporter, b outBatch) {
	defer rp.senders.Done()
	ok := false
	defer func() {
		_ = recover()
		rp.mu.Lock()
		rp.inFlight--
		if ok {
			rp.backoff = reportBackoffLo
		} else {
			giveBackLocked(rp, b)
			rp.retryAt = time.Now().Add(rp.backoff)
			rp.backoff *= 2
			if rp.backoff > reportBackoffHi {
				rp.backoff = reportBackoffHi
			}
		}
		rp.mu.Unlock()
		rp.wake.raise()
	}()
	ok = rp.send(b)
}

// flushOne sends the oldest batch in the caller's goroutine (used when stopping). On
// failure the batch goes back into the queue.
func flushOne(rp *reporter) bool {
	rp.mu.Lock()
	b := takeLocked(rp)
	rp.mu.Unlock()
	if len(b.reports) == 0 {
		return true
	}
	if rp.send(b) {
		return true
	}
	rp.mu.Lock()
	giveBackLocked(rp, b)
	rp.mu.Unlock()
	return false
}

// send posts one batch; true means the reporter is done with it: controlsvc acknowledged
// it, or refused it with a 400, which no retry can change. A refused batch is dropped and
// counted rather than blocking every later report. Anything else (no answer, a 5xx, a 401
// while secrets are rotated) is retried.
func (rp *reporter) send(b outBatch) bool {
	reps := make([]report, len(b.reports))
	for i := range b.reports {
		reps[i] = b.reports[i].r
	}
	body, err := jsonsse.Encode(reportBatch{Reports: reps, Dropped: b.dropped})
	if err != nil {
		refused(rp, b)
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	status, _, _, err := post(rp.client, ctx, reportsPath, body)
	if err != nil {
		return false
	}
	if status == http.StatusBadRequest {
		refused(rp, b)
		return true
	}
	return status == http.StatusOK
}

// flushAll makes one last pass over the queue when stopping.
func flushAll(rp *reporter) {
	for pending(rp) > 0 {
		if !flushOne(rp) {
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
		rp.wake.raise()
		if !running {
			return
		}
		// The last flush, bounded, without a select (wakeup.go).
		exit := make(chan struct{}, 2)
		go func() {
			<-rp.done
			exit <- struct{}{}
		}()
		t := time.AfterFunc(reportTimeout, func() { exit <- struct{}{} })
		<-exit
		t.Stop()
	})
}
