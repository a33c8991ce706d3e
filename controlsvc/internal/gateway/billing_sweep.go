package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// sweepInterval spaces the sweeper's runs; a reservation is released at most this long
// after it expired.
const sweepInterval = time.Minute

// sweepTimeout bounds one run.
const sweepTimeout = 30 * time.Second

// reservationStore is what the sweeper needs of the store.
type reservationStore interface {
	ReleaseExpiredReservations(ctx context.Context, olderThan time.Time) (int, error)
}

var _ reservationStore = (*store.Store)(nil)

// sweeper releases the reservations of requests whose report never came (a crashed
// gateway), once they are older than ttl (docs/billing.md). Every controlsvc runs one; the
// release is idempotent, so instances never release one reservation twice.
type sweeper struct {
	st       reservationStore
	ttl      time.Duration
	interval time.Duration
	log      *slog.Logger

	stop chan struct{}
	done chan struct{}
}

func newSweeper(st reservationStore, ttl, interval time.Duration, log *slog.Logger) *sweeper {
	return &sweeper{st: st, ttl: ttl, interval: interval, log: log,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// run sweeps every interval until close.
func (w *sweeper) run() {
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
func (w *sweeper) sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	n, err := w.st.ReleaseExpiredReservations(ctx, time.Now().Add(-w.ttl))
	if err != nil {
		w.log.Error("releasing expired reservations", "released", n, "error", err)
		return
	}
	if n > 0 {
		// Each one is a request whose report was lost: worth an operator's attention.
		w.log.Warn("released expired reservations", "released", n, "older_than", w.ttl)
	}
}

func (w *sweeper) close() {
	close(w.stop)
	<-w.done
}
