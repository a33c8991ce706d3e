package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The money one reservation holds in the concurrency tests; every budget is worth 10.
const concReserve = 1_000_000

// concResult is what a run of 100 parallel requests observed.
type concResult struct {
	admitted     int64
	maxInFlight  int64
	charged      int64 // sum of the settled costs
	largestOver  int64 // largest cost - reservation
	refusalKinds map[RefusalKind]int
}

// runParallelRequests sends 100 requests at once: each reserves concReserve and, if
// admitted, runs a moment and settles at cost(rng). inFlight counts a request from the
// commit of its reservation to the start of its settlement, so it never exceeds the
// reservations that exist at that moment.
func runParallelRequests(t *testing.T, f *billFixture, cost func(r *rand.Rand) int64) concResult {
	t.Helper()
	var (
		inFlight, maxInFlight, admitted, charged, largestOver atomic.Int64
		mu                                                    sync.Mutex
		kinds                                                 = map[RefusalKind]int{}
		wg                                                    sync.WaitGroup
		start                                                 = make(chan struct{})
	)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			req := fmt.Sprintf("%s-req-%03d", t.Name(), i)
			<-start
			_, refusal, err := f.st.reserve(context.Background(), ReserveInput{RequestID: req, UserID: f.user,
				APIKeyID: f.key, GroupID: f.group, AmountMicros: concReserve, MinAmountMicros: concReserve}, billNow, time.UTC)
			if err != nil {
				t.Errorf("Reserve(%s): %v", req, err)
				return
			}
			if refusal != nil {
				mu.Lock()
				kinds[refusal.Kind]++
				mu.Unlock()
				return
			}
			admitted.Add(1)
			n := inFlight.Add(1)
			for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
			}
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
			c := cost(rng)
			inFlight.Add(-1)
			err = f.st.WithTx(context.Background(), func(tx pgx.Tx) error {
				_, err := settleInTx(context.Background(), tx, Settlement{RequestID: req, UserID: f.user,
					APIKeyID: f.key, GroupID: f.group, CostMicros: c}, billNow, time.UTC)
				return err
			})
			if err != nil {
				t.Errorf("settling %s: %v", req, err)
				return
			}
			charged.Add(c)
			if over := c - concReserve; over > 0 {
				for m := largestOver.Load(); over > m && !largestOver.CompareAndSwap(m, over); m = largestOver.Load() {
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	return concResult{admitted: admitted.Load(), maxInFlight: maxInFlight.Load(), charged: charged.Load(),
		largestOver: largestOver.Load(), refusalKinds: kinds}
}

// watch polls, until stop, the budget left after what in-flight requests hold (remaining,
// one value from SQL with $1 user, $2 key, $3 subscription) and the number of the user's
// reservations, each pair from one snapshot; stop returns the lowest budget and the highest
// count seen.
func watch(t *testing.T, f *billFixture, remaining string) (stop func() (lowest, most int64)) {
	t.Helper()
	done := make(chan struct{})
	result := make(chan [2]int64, 1)
	query := `SELECT (` + remaining + `), (SELECT count(*) FROM reservations WHERE user_id = $1)`
	go func() {
		lowest, most := int64(1<<62), int64(0)
		for {
			var v, n int64
			if err := f.st.Pool.QueryRow(context.Background(), query, f.user, f.key, f.sub).Scan(&v, &n); err == nil {
				lowest, most = min(lowest, v), max(most, n)
			}
			select {
			case <-done:
				result <- [2]int64{lowest, most}
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() (int64, int64) { close(done); r := <-result; return r[0], r[1] }
}

// concBudget is a budget a request can be held against, worth 10 reservations.
type concBudget struct {
	name      string
	setup     billSetup
	subscribe bool
	spent     func(s billSums) int64 // money spent from the budget
	// SQL of the budget left after what is held ($1 user, $2 key, $3 subscription).
	remaining string
	refusal   RefusalKind
}

// concRun is what 100 parallel requests against one budget observed: the requests, the
// budget left after holds at its lowest, the most reservations at once, and the sums after.
type concRun struct {
	concResult
	lowest, most int64
	sums         billSums
}

// run seeds the budget on st and sends 100 parallel requests settling at cost, watching the
// budget meanwhile.
func (b concBudget) run(t *testing.T, st *Store, cost func(r *rand.Rand) int64) concRun {
	t.Helper()
	f := seedBill(t, st, b.setup)
	if b.subscribe {
		f.withSubscription(t, billNow.Add(-time.Hour))
	}
	stop := watch(t, f, b.remaining)
	got := concRun{concResult: runParallelRequests(t, f, cost)}
	got.lowest, got.most = stop()
	got.sums = f.sums(t)
	return got
}

// The three budgets a request can be held against.
var concBudgets = []concBudget{
	{
		name: "balance", setup: billSetup{balance: 10 * concReserve},
		spent:     func(s billSums) int64 { return 10*concReserve - s.balance },
		remaining: `SELECT balance_micros - reserved_micros FROM users WHERE id = $1 AND $2::bigint > 0 AND $3::bigint >= 0`,
		refusal:   RefuseInsufficientBalance,
	},
	{
		name: "subscription daily window", subscribe: true,
		setup:     billSetup{mode: BillingSubscription, limits: []any{10 * concReserve, nil, nil}},
		spent:     func(s billSums) int64 { return s.daily },
		remaining: `SELECT 10000000 - daily_used_micros - reserved_micros FROM subscriptions WHERE id = $3 AND $1::bigint > 0 AND $2::bigint > 0`,
		refusal:   RefuseWindowExhausted,
	},
	{
		name: "key quota", setup: billSetup{balance: 1000 * concReserve, quota: ptr(int64(10 * concReserve))},
		spent:     func(s billSums) int64 { return s.quotaUsed },
		remaining: `SELECT quota_micros - quota_used_micros - quota_reserved_micros FROM api_keys WHERE id = $2 AND $1::bigint > 0 AND $3::bigint >= 0`,
		refusal:   RefuseKeyQuota,
	},
}

// 100 parallel requests whose actual cost never exceeds their reservation never take a
// budget below 0, and at most 10 hold a reservation at once.
func TestConcurrentReservationsNeverOverspend(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	for _, b := range concBudgets {
		t.Run(b.name, func(t *testing.T) {
			got := b.run(t, st, func(r *rand.Rand) int64 { return r.Int64N(concReserve + 1) })
			s, lowest, most := got.sums, got.lowest, got.most
			if lowest < 0 || most > 10 {
				t.Errorf("during the run: budget left after holds down to %d (want ≥ 0), up to %d reservations (want ≤ 10)",
					lowest, most)
			}
			if spent := b.spent(s); spent != got.charged || spent > 10*concReserve {
				t.Errorf("spent %d, settled costs %d, budget %d", spent, got.charged, 10*concReserve)
			}
			if got.maxInFlight > 10 || got.admitted < 10 {
				t.Errorf("max in flight %d (want ≤ 10), admitted %d (want ≥ 10)", got.maxInFlight, got.admitted)
			}
			if got.admitted+int64(got.refusalKinds[b.refusal]) != 100 {
				t.Errorf("admitted %d + refusals %v != 100", got.admitted, got.refusalKinds)
			}
			if s.reservations != 0 || s.userReserved != 0 || s.subReserved != 0 || s.quotaReserved != 0 {
				t.Errorf("money still held after every request settled: %+v", s)
			}
			t.Logf("%s: admitted %d, up to %d reservations at once, spent %d of %d", b.name, got.admitted, most,
				b.spent(s), 10*concReserve)
		})
	}
}

// When actual costs exceed their reservations, the overspend is bounded by the overruns of
// the requests in flight together (docs/billing.md): at most 10 reservations fit in the
// budget, so at most 10 × the largest overrun.
func TestConcurrentOverrunsAreBounded(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	for _, b := range concBudgets {
		t.Run(b.name, func(t *testing.T) {
			got := b.run(t, st, func(r *rand.Rand) int64 { return concReserve + r.Int64N(concReserve/2+1) })
			s, most := got.sums, got.most
			spent := b.spent(s)
			if spent != got.charged {
				t.Errorf("spent %d != settled costs %d", spent, got.charged)
			}
			if bound := 10*concReserve + 10*got.largestOver; spent > bound || most > 10 || got.maxInFlight > 10 {
				t.Errorf("spent %d, bound budget + 10 × largest overrun %d = %d; up to %d reservations at once",
					spent, got.largestOver, bound, most)
			}
			if s.reservations != 0 || s.userReserved != 0 || s.subReserved != 0 || s.quotaReserved != 0 {
				t.Errorf("money still held: %+v", s)
			}
			t.Logf("%s: admitted %d, up to %d reservations at once, spent %d, largest overrun %d", b.name, got.admitted,
				most, spent, got.largestOver)
		})
	}
}

// One request at a time: the overspend is at most the largest single overrun.
func TestSequentialOverrunIsAtMostTheLargestOverrun(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	f := seedBill(t, st, billSetup{balance: 10 * concReserve})
	rng := rand.New(rand.NewPCG(7, 7))
	var largest int64
	for i := 0; ; i++ {
		req := fmt.Sprintf("seq-%d", i)
		if _, refusal := f.reserve(t, req, concReserve, billNow, time.UTC); refusal != nil {
			break
		}
		over := rng.Int64N(concReserve / 2)
		largest = max(largest, over)
		f.settle(t, req, concReserve+over, billNow, time.UTC)
	}
	if s := f.sums(t); s.balance < -largest {
		t.Errorf("balance %d, below minus the largest overrun %d", s.balance, largest)
	}
}

// Many settlements of several users in one transaction each, from concurrent batches that
// share users, settled in ascending user id as the usage writer does: no deadlock, and
// every cost charged once.
func TestConcurrentBatchSettlements(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	var users []*billFixture
	for range 5 {
		users = append(users, seedBill(t, st, billSetup{balance: 1000 * concReserve, quota: ptr(int64(1000 * concReserve))}))
	}
	type item struct {
		f   *billFixture
		req string
	}
	var batches [][]item
	for b := range 8 {
		var batch []item
		for i, f := range users { // ascending user id
			for j := range 3 {
				req := fmt.Sprintf("b%d-u%d-%d", b, i, j)
				if _, refusal := f.reserve(t, req, 1000, billNow, time.UTC); refusal != nil {
					t.Fatalf("refused: %+v", refusal)
				}
				batch = append(batch, item{f, req})
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
					if _, err := SettleInTx(context.Background(), tx, Settlement{RequestID: it.req, UserID: it.f.user,
						APIKeyID: it.f.key, GroupID: it.f.group, CostMicros: 100}); err != nil {
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
		s := f.sums(t)
		if s.balance != 1000*concReserve-8*3*100 || s.quotaUsed != 8*3*100 || s.userReserved != 0 || s.quotaReserved != 0 || s.reservations != 0 {
			t.Errorf("user %d after the batches: %+v", f.user, s)
		}
	}
}
