// Package ledger owns the ledger's side of completion reports: pricing a batch into its usage
// records and attempts (docs/billing.md, "Ledger"), billing by estimate, and the background
// work that keeps the ledger whole: the month partitions made ahead and the sweep of holds
// whose report never came.
package ledger

import (
	"context"
	"log/slog"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/holds"
)

// SweepInterval spaces the sweeper's runs; a reservation is released at most this long
// after it expired.
const SweepInterval = time.Minute

// sweepTimeout bounds one run.
const sweepTimeout = 30 * time.Second

// holdReleaser is what the sweeper needs of the holds.
type holdReleaser interface {
	ReleaseExpired(ctx context.Context, now time.Time) (int, error)
}

var _ holdReleaser = (*holds.Holds)(nil)

// Sweeper releases the holds of requests whose report never came (a crashed gateway), once
// they expired (POOLGATE_RESERVATION_TTL after their admission, docs/billing.md). Every
// controlsvc runs one; the release is idempotent, so instances never release one hold twice.
type Sweeper struct {
	st       holdReleaser
	interval time.Duration
	log      *slog.Logger

	stop chan struct{}
	done chan struct{}
}

// NewSweeper builds a sweeper of st; Run starts it.
func NewSweeper(st holdReleaser, interval time.Duration, log *slog.Logger) *Sweeper {
	return &Sweeper{st: st, interval: interval, log: log,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Run sweeps every interval until Close.
func (w *Sweeper) Run() {
	defer close(w.done)
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			w.sweep()
		case <-w.stop:
			return
		}
	}
}

// sweep releases what expired; a failure is logged and retried at the next tick.
func (w *Sweeper) sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	n, err := w.st.ReleaseExpired(ctx, time.Now())
	if err != nil {
		w.log.Error("releasing expired holds", "released", n, "error", err)
		return
	}
	if n > 0 {
		// Each one is a request whose report was lost: worth an operator's attention.
		w.log.Warn("released expired holds", "released", n)
	}
}

// Close stops the sweeper and waits for a sweep in progress.
func (w *Sweeper) Close() {
	close(w.stop)
	<-w.done
}
