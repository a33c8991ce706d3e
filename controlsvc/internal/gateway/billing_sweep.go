package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/holds"
)

// sweepInterval spaces the sweeper's runs; a reservation is released at most this long
// after it expired.
const sweepInterval = time.Minute

// sweepTimeout bounds one run.
const sweepTimeout = 30 * time.Second

// holdReleaser is what the sweeper needs of the holds.
type holdReleaser interface {
	ReleaseExpired(ctx context.Context, now time.Time) (int, error)
}

var _ holdReleaser = (*holds.Holds)(nil)

// sweeper releases the holds of requests whose report never came (a crashed gateway), once
// they expired (POOLGATE_RESERVATION_TTL after their admission, docs/billing.md). Every
// controlsvc runs one; the release is idempotent, so instances never release one hold twice.
type sweeper struct {
	st       holdReleaser
	interval time.Duration
	log      *slog.Logger

	stop chan struct{}
	done chan struct{}
}

func newSweeper(st holdReleaser, interval time.Duration, log *slog.Logger) *sweeper {
	return &sweeper{st: st, interval: interval, log: log,
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

func (w *sweeper) close() {
	close(w.stop)
	<-w.done
}
