package routing

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// writeTimeout bounds one batch's pipeline.
const writeTimeout = 5 * time.Second

// maxPending bounds the entries waiting for a write; past it Add writes its entry itself,
// so a slow Redis slows admissions' goroutines down rather than growing memory.
const maxPending = 4096

type pendingEntry struct {
	requestID string
	b         []byte
}

// Writer appends admissions' entries in batches: one pipeline carries every entry added
// while the previous one was in flight, so a busy controlsvc makes one Redis round trip for
// many admissions and no admission's goroutine waits for Redis. Flush waits until the
// entries added before it are written (a settlement reads them next).
type Writer struct {
	log *Log
	lg  *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond
	pending []pendingEntry
	added   uint64 // entries added so far
	written uint64 // entries whose batch was written (or failed) so far
	closed  bool

	wake chan struct{} // buffered 1, never closed
	stop chan struct{}
	done chan struct{}
}

// NewWriter starts the writer's goroutine; Close stops it after a last write.
func (l *Log) NewWriter(lg *slog.Logger) *Writer {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	w := &Writer{log: l, lg: lg, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	go w.run()
	return w
}

// Add queues one admission's entry, bounded (Entry.Bound).
func (w *Writer) Add(ctx context.Context, requestID string, e Entry) {
	e.Bound()
	b, err := json.Marshal(e)
	if err != nil {
		w.lg.Warn("encoding the routing explanation", "error", err)
		return
	}
	w.mu.Lock()
	if w.closed || len(w.pending) >= maxPending {
		w.mu.Unlock()
		w.writeNow(ctx, []pendingEntry{{requestID, b}})
		return
	}
	w.pending = append(w.pending, pendingEntry{requestID, b})
	w.added++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every entry added before it is written, or ctx ends.
func (w *Writer) Flush(ctx context.Context) {
	w.mu.Lock()
	target := w.added
	w.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.written < target && ctx.Err() == nil {
		w.cond.Wait()
	}
}

// Close writes what is pending and stops the goroutine. Later Adds write themselves.
func (w *Writer) Close() {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if !already {
		close(w.stop)
	}
	<-w.done
}

func (w *Writer) run() {
	defer close(w.done)
	for {
		select {
		case <-w.wake:
			w.writePending()
		case <-w.stop:
			w.writePending() // what came before Close
			return
		}
	}
}

func (w *Writer) writePending() {
	w.mu.Lock()
	batch := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(batch) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		w.writeNow(ctx, batch)
		cancel()
	}
	w.mu.Lock()
	w.written += uint64(len(batch))
	w.cond.Broadcast()
	w.mu.Unlock()
}

// writeNow appends entries in one pipeline. Failing costs only the explanations: logged.
func (w *Writer) writeNow(ctx context.Context, batch []pendingEntry) {
	_, err := w.log.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range batch {
			k := Key(e.requestID)
			p.RPush(ctx, k, e.b)
			p.LTrim(ctx, k, 0, MaxEntries-1)
			p.Expire(ctx, k, TTL)
		}
		return nil
	})
	if err != nil {
		w.lg.Warn("recording routing explanations", "entries", len(batch), "error", err)
	}
}
