package admission

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// touchInterval is how often last_used_at updates are written, in one batch.
const touchInterval = time.Second

// recentUseWindow is how long this process remembers its own selections. It outlives the
// account cache (CacheTTL) plus one flush, after which PostgreSQL has the value.
const recentUseWindow = 10 * time.Second

// toucher batches last_used_at updates of accounts and API keys off the request path, and
// remembers recent selections so that LRU ordering is right before they reach PostgreSQL and
// the account cache. One per Admitter; it owns its goroutine, stopped by close.
type toucher struct {
	st  *store.Store
	log *slog.Logger

	mu       sync.Mutex
	accounts map[int64]struct{}
	keys     map[int64]struct{}
	recent   map[int64]time.Time // account id → last selection by this process

	stop chan struct{}
	done chan struct{}
}

func newToucher(st *store.Store, log *slog.Logger) *toucher {
	return &toucher{
		st:       st,
		log:      log,
		accounts: make(map[int64]struct{}),
		keys:     make(map[int64]struct{}),
		recent:   make(map[int64]time.Time),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// used records that a request was admitted with accountID and keyID at `at`.
func (t *toucher) used(accountID, keyID int64, at time.Time) {
	t.mu.Lock()
	t.accounts[accountID] = struct{}{}
	t.keys[keyID] = struct{}{}
	if at.After(t.recent[accountID]) {
		t.recent[accountID] = at
	}
	t.mu.Unlock()
}

// lastUsed returns the later of db (from PostgreSQL) and this process's own last selection.
func (t *toucher) lastUsed(accountID int64, db time.Time) time.Time {
	t.mu.Lock()
	r := t.recent[accountID]
	t.mu.Unlock()
	if r.After(db) {
		return r
	}
	return db
}

func (t *toucher) run() {
	defer close(t.done)
	tick := time.NewTicker(touchInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.flush()
		case <-t.stop:
			t.flush()
			return
		}
	}
}

func (t *toucher) close() {
	close(t.stop)
	<-t.done
}

func (t *toucher) flush() {
	now := time.Now()
	t.mu.Lock()
	accounts := setIDs(t.accounts)
	keys := setIDs(t.keys)
	t.accounts = make(map[int64]struct{})
	t.keys = make(map[int64]struct{})
	for id, at := range t.recent {
		if now.Sub(at) > recentUseWindow {
			delete(t.recent, id)
		}
	}
	t.mu.Unlock()
	if len(accounts) == 0 && len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	if err := t.st.TouchLastUsed(ctx, accounts, keys, now); err != nil {
		// Best effort: LRU order is approximate anyway and the next selection re-queues.
		t.log.Warn("recording last use", "error", err)
	}
}

func setIDs(m map[int64]struct{}) []int64 {
	out := make([]int64, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	return out
}
