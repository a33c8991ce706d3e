package ledger

import (
	"context"
	"log/slog"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// PartitionInterval spaces the runs that create the ledger's coming month partitions; with
// store.UsageMonthsAhead months made ahead, a daily run leaves months of margin.
const PartitionInterval = 24 * time.Hour

// partitionTimeout bounds one run (creating a month is a few DDL statements; moving rows
// out of a DEFAULT partition may take longer).
const partitionTimeout = time.Minute

// partitionStore is what the partition keeper needs of the store.
type partitionStore interface {
	EnsureUsagePartitions(ctx context.Context, now time.Time) (int, error)
}

var _ partitionStore = (*store.Store)(nil)

// PartitionKeeper creates the ledger's month partitions ahead of time, at start and then
// every interval (docs/design.md, "Ledger partitions"). Every controlsvc runs one; the
// creation is idempotent and serialised in PostgreSQL. A row of a month not created lands
// in the DEFAULT partition, so a missed run delays nothing but the drop of that month.
type PartitionKeeper struct {
	st       partitionStore
	interval time.Duration
	log      *slog.Logger

	stop chan struct{}
	done chan struct{}
}

// NewPartitionKeeper builds a keeper of st's partitions; Run starts it.
func NewPartitionKeeper(st partitionStore, interval time.Duration, log *slog.Logger) *PartitionKeeper {
	return &PartitionKeeper{st: st, interval: interval, log: log,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Run ensures the partitions now and every interval until Close.
func (k *PartitionKeeper) Run() {
	defer close(k.done)
	k.ensure()
	tick := time.NewTicker(k.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			k.ensure()
		case <-k.stop:
			return
		}
	}
}

// ensure creates what is missing; a failure is logged and retried at the next tick.
func (k *PartitionKeeper) ensure() {
	ctx, cancel := context.WithTimeout(context.Background(), partitionTimeout)
	defer cancel()
	n, err := k.st.EnsureUsagePartitions(ctx, time.Now())
	if err != nil {
		k.log.Error("creating ledger month partitions", "error", err)
		return
	}
	if n > 0 {
		k.log.Info("created ledger month partitions", "tables", n)
	}
}

// Close stops the keeper and waits for a run in progress.
func (k *PartitionKeeper) Close() {
	close(k.stop)
	<-k.done
}
