package plugin

import (
	"os"
	"strconv"
	"time"
)

// Spool policy of the reporter (docs/design.md, "POST /internal/v1/reports").
const (
	// reportMaxSpool bounds the reports queued while controlsvc does not acknowledge them
	// (the batches in flight, at most reportMaxInFlight × reportMaxBatch, come on top). When
	// it is full the oldest are dropped: their usage is lost and their slots are freed by
	// lease expiry, while the newest, whose requests may still be running, are kept. At a
	// few hundred bytes a report this is a few MB; it covers minutes of a controlsvc outage,
	// during which no new request is admitted anyway.
	reportMaxSpool = 10000
	// reportDropLogEvery spaces the log lines about dropped reports: the first drop is
	// logged at once, later ones at most this often, summed.
	reportDropLogEvery = 10 * time.Second
)

// dropCounts counts the reports the reporter dropped.
type dropCounts struct {
	total  int64 // since start
	unsent int64 // not yet carried by an acknowledged batch to controlsvc
	// Not yet logged, by reason: the spool was full; controlsvc refused the batch (400) or
	// it could not be encoded.
	full, refused int64
	nextLog       time.Time // no log line before this
}

// spooled is a queued report with its place in the order of enqueueing, which survives
// batches that fail and come back in any order.
type spooled struct {
	seq uint64
	r   report
}

// outBatch is one batch on its way to controlsvc: its reports and the count of earlier
// drops it carries. Both go back to the reporter unless controlsvc acknowledges it.
type outBatch struct {
	reports []spooled
	dropped int64
}

// takeLocked removes the oldest batch from the queue; it carries every drop not yet
// reported, so that two batches in flight never report the same drops.
func takeLocked(rp *reporter) outBatch {
	n := len(rp.queue)
	if n > rp.maxBatch {
		n = rp.maxBatch
	}
	if n == 0 {
		return outBatch{}
	}
	b := outBatch{reports: make([]spooled, n), dropped: rp.drops.unsent}
	rp.drops.unsent = 0
	copy(b.reports, rp.queue[:n])
	rp.queue = rp.queue[n:]
	if len(rp.queue) == 0 {
		rp.queue = nil // let the backing array go
	}
	return b
}

// giveBackLocked puts an unacknowledged batch back into the queue in its place, and its
// drops back among those not yet reported. Its place is usually the head, but not always:
// with two batches in flight the newer one may fail last, and the spool must still trim
// the oldest reports.
func giveBackLocked(rp *reporter, b outBatch) {
	rp.drops.unsent += b.dropped
	if len(b.reports) == 0 {
		return
	}
	// Batches are taken from the head of a queue in seq order, so a batch's seqs never
	// interleave with the queue's: it goes in before the first newer report.
	at := 0
	for at < len(rp.queue) && rp.queue[at].seq < b.reports[0].seq {
		at++
	}
	q := make([]spooled, 0, len(rp.queue)+len(b.reports))
	q = append(q, rp.queue[:at]...)
	q = append(q, b.reports...)
	q = append(q, rp.queue[at:]...)
	rp.queue = q
	trimLocked(rp)
}

func pending(rp *reporter) int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return len(rp.queue)
}

// trimLocked drops the oldest reports beyond the spool bound.
func trimLocked(rp *reporter) {
	over := len(rp.queue) - rp.maxSpool
	if over <= 0 {
		return
	}
	// Reslicing, not copying: a full spool costs no O(spool) move per report; append
	// reallocates (live reports only) when the backing array runs out.
	rp.queue = rp.queue[over:]
	rp.drops.full += int64(over)
	addDropsLocked(rp, int64(over))
}

// refused counts a batch that controlsvc will never accept as dropped; the drops it
// carried are still to be reported.
func refused(rp *reporter, b outBatch) {
	rp.mu.Lock()
	rp.drops.unsent += b.dropped
	rp.drops.refused += int64(len(b.reports))
	addDropsLocked(rp, int64(len(b.reports)))
	rp.mu.Unlock()
}

func addDropsLocked(rp *reporter, n int64) {
	rp.drops.total += n
	rp.drops.unsent += n
}

// droppedCount returns how many reports were dropped since start.
func droppedCount(rp *reporter) int64 {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.drops.total
}

// logDrops writes one line about the drops not yet logged, unless a line was written less
// than logDropsEvery before now; then it returns how long until the next one may be
// written (0: nothing waits to be logged). A zero now logs at once.
func logDrops(rp *reporter, now time.Time) time.Duration {
	rp.mu.Lock()
	d := &rp.drops
	if d.full == 0 && d.refused == 0 {
		rp.mu.Unlock()
		return 0
	}
	if !now.IsZero() && now.Before(d.nextLog) {
		left := d.nextLog.Sub(now)
		rp.mu.Unlock()
		return left
	}
	line := "poolgate: dropped completion reports, their usage is lost:"
	if d.full > 0 {
		line += " " + strconv.FormatInt(d.full, 10) + " oldest (spool of " + strconv.Itoa(rp.maxSpool) +
			" full: control service not acknowledging)"
	}
	if d.refused > 0 {
		line += " " + strconv.FormatInt(d.refused, 10) + " refused by the control service (400)"
	}
	line += "; " + strconv.FormatInt(d.total, 10) + " since start"
	d.full, d.refused = 0, 0
	if now.IsZero() {
		now = time.Now()
	}
	d.nextLog = now.Add(rp.logDropsEvery)
	logf := rp.logf
	rp.mu.Unlock()
	logf(line)
	return 0
}

// logLine writes a warning to Traefik's standard error in Traefik's console layout. The
// standard log package would not do: Traefik routes it to its debug level.
func logLine(line string) {
	_, _ = os.Stderr.WriteString(time.Now().UTC().Format(time.RFC3339) + " WRN " + line + "\n")
}
