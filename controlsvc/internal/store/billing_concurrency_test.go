package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Many settlements of several users in one transaction each, from concurrent batches that
// share users, settled in ascending user id as the usage writer does: no deadlock, and
// every cost charged once. (The holds' own concurrency, no overspend and bounded overruns,
// is package holds' TestConcurrentHoldsNeverOverspend.)
func TestConcurrentBatchSettlements(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	const budget = 1_000_000_000
	var users []*billFixture
	for range 5 {
		users = append(users, seedBill(t, st, billSetup{balance: budget, quota: ptr(int64(budget))}))
	}
	type item struct {
		f    *billFixture
		req  string
		held *HeldRef
	}
	var batches [][]item
	for b := range 8 {
		var batch []item
		for i, f := range users { // ascending user id
			for j := range 3 {
				batch = append(batch, item{f, fmt.Sprintf("b%d-u%d-%d", b, i, j), f.held(t, 1000)})
			}
		}
		batches = append(batches, batch)
	}
	var wg sync.WaitGroup
	for _, batch := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := st.WithTx(context.Background(), func(tx pgx.Tx) error {
				for _, it := range batch {
					if _, err := settleInTx(context.Background(), tx, Settlement{RequestID: it.req, UserID: it.f.user,
						APIKeyID: it.f.key, GroupID: it.f.group, CostMicros: 100, Held: it.held}, billNow, time.UTC); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("settling a batch: %v", err)
			}
		}()
	}
	wg.Wait()
	for _, f := range users {
		if s := f.sums(t); s.balance != budget-8*3*100 || s.quotaUsed != 8*3*100 {
			t.Errorf("user %d after the batches: %+v", f.user, s)
		}
	}
}
