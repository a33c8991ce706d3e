package holds

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// concReserve is what each request of the concurrency tests holds; budgets are worth 10.
const concReserve = 1_000_000

// budgetKinds are the three budgets a hold can be bounded by, each worth 10 holds.
var budgetKinds = []struct {
	name string
	seed seed
}{
	{"balance", seed{balance: 10 * concReserve}},
	{"key quota", seed{balance: 1 << 40, quota: ptr(10 * concReserve)}},
	{"subscription window", seed{mode: store.BillingSubscription, limits: []*int64{ptr(10 * concReserve)}}},
}

// runWorkers runs 32 workers, each admitting 10 requests in turn from cold wallets (ids
// idPrefix<worker>-<i>): hold concReserve, keep it a millisecond, then end it as end says
// for the hold (settle at cost, or release). Worker w draws from rand.NewPCG(w, stream).
// It returns what was charged and the most requests in flight at once.
func runWorkers(t *testing.T, f *fixture, idPrefix string, stream uint64,
	end func(rng *rand.Rand, held int64) (cost int64, release bool)) (charged, maxInFlight int64) {
	t.Helper()
	var inFlight, maxSeen, total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), stream))
			for i := range 10 {
				id := fmt.Sprintf("%s%d-%d", idPrefix, w, i)
				hold, refusal, err := f.h.Reserve(context.Background(), f.req(id, concReserve, concReserve))
				if err != nil {
					errs <- err
					return
				}
				if refusal != nil {
					continue
				}
				n := inFlight.Add(1)
				for m := maxSeen.Load(); n > m && !maxSeen.CompareAndSwap(m, n); m = maxSeen.Load() {
				}
				time.Sleep(time.Millisecond)
				inFlight.Add(-1)
				cost, release := end(rng, hold.AmountMicros)
				if release {
					if _, err := f.h.Release(context.Background(), f.user, id); err != nil {
						errs <- err
						return
					}
					continue
				}
				if err := f.settleNoT(id, cost); err != nil {
					errs <- err
					return
				}
				total.Add(cost)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return total.Load(), maxSeen.Load()
}

// runConcurrent is runWorkers where a request is released one time in four and otherwise
// settles at a cost of at most its hold.
func runConcurrent(t *testing.T, f *fixture) (charged, maxInFlight int64) {
	t.Helper()
	return runWorkers(t, f, "w", 1, func(rng *rand.Rand, held int64) (int64, bool) {
		if rng.IntN(4) == 0 {
			return 0, true
		}
		return rng.Int64N(held + 1), false
	})
}

// settleNoT is settle for a worker goroutine.
func (f *fixture) settleNoT(id string, cost int64) error {
	ctx := context.Background()
	q := `UPDATE users SET balance_micros = balance_micros - $2 WHERE id = $1`
	if f.mode == store.BillingSubscription {
		q = `UPDATE subscriptions SET daily_used_micros = daily_used_micros + $2, daily_window_start = COALESCE(daily_window_start, now()),
			weekly_used_micros = weekly_used_micros + $2, weekly_window_start = COALESCE(weekly_window_start, now()),
			monthly_used_micros = monthly_used_micros + $2, monthly_window_start = COALESCE(monthly_window_start, now()) WHERE user_id = $1`
	}
	if _, err := f.st.Pool.Exec(ctx, q, f.user, cost); err != nil {
		return err
	}
	if _, err := f.st.Pool.Exec(ctx, `UPDATE api_keys SET quota_used_micros = quota_used_micros + $2 WHERE id = $1 AND quota_micros IS NOT NULL`, f.key, cost); err != nil {
		return err
	}
	return f.h.Settle(ctx, []Charge{{RequestID: id, UserID: f.user, KeyID: f.key, GroupID: f.group, CostMicros: cost}})
}

// 32 concurrent workers never hold more than the budget: at most 10 requests of
// concReserve are in flight, nothing is charged beyond the budget, and at the end nothing
// is held and the copies agree with PostgreSQL. Each budget kind: balance, key quota,
// subscription window.
func TestConcurrentHoldsNeverOverspend(t *testing.T) {
	t.Parallel()
	for _, tt := range budgetKinds {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.seed)
			charged, inFlight := runConcurrent(t, f)
			t.Logf("charged %d, at most %d in flight, %d loads", charged, inFlight, f.loads.Load())
			if inFlight > 10 {
				t.Errorf("%d requests in flight at once on a budget worth 10", inFlight)
			}
			if charged > 10*concReserve {
				t.Errorf("charged %d, more than the budget %d", charged, 10*concReserve)
			}
			if charged == 0 {
				t.Error("nothing was charged: the run tested nothing")
			}
			if h := f.held(t); h.Sum() != 0 || h.Holds != 0 {
				t.Errorf("held %+v after every request ended", h)
			}
			f.wantCopyAgrees(t)
		})
	}
}

// wantCopyAgrees checks the wallet copies against PostgreSQL.
func (f *fixture) wantCopyAgrees(t *testing.T) {
	t.Helper()
	w, err := f.st.LoadWallets(t.Context(), f.user, f.key, f.group, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := prefix(f.user)
	got, err := f.rdb.HMGet(t.Context(), p+"bal", "bal").Result()
	if err != nil {
		t.Fatal(err)
	}
	if f.mode == store.BillingBalance && got[0] != fmt.Sprint(w.BalanceMicros) {
		t.Errorf("balance copy %v, PostgreSQL %d", got[0], w.BalanceMicros)
	}
	if w.QuotaMicros != nil {
		used, _ := f.rdb.HGet(t.Context(), fmt.Sprintf("%sk%d", p, f.key), "used").Result()
		if used != fmt.Sprint(w.QuotaUsedMicros) {
			t.Errorf("key quota copy used %s, PostgreSQL %d", used, w.QuotaUsedMicros)
		}
	}
	if w.Subscription != nil {
		used, _ := f.rdb.HGet(t.Context(), fmt.Sprintf("%sg%d", p, f.group), "u1").Result()
		if used != fmt.Sprint(w.Subscription.Used[0]) {
			t.Errorf("daily window copy used %s, PostgreSQL %d", used, w.Subscription.Used[0])
		}
	}
}

// Redis loses everything while requests are in flight: their holds go, the money in
// PostgreSQL stays exact, the wallets reload from it, and what the admissions after the loss
// can hold beyond the budget is at most what the lost holds held (docs/billing.md, "Bound
// while Redis restarts"). The lost requests' reports still count as granted.
func TestFlushAllMidFlight(t *testing.T) {
	t.Parallel()
	f := newFixture(t, seed{balance: 10 * concReserve})
	ctx := t.Context()
	for i := range 6 {
		if _, r, err := f.h.Reserve(ctx, f.req(fmt.Sprint("lost", i), concReserve, concReserve)); err != nil || r != nil {
			t.Fatalf("reserve: %v %+v", err, r)
		}
	}
	lost := int64(6 * concReserve)
	if err := f.rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	held, recently, err := f.h.Lookup(ctx, []Key{{UserID: f.user, RequestID: "lost0"}})
	if err != nil || len(held) != 0 || !recently {
		t.Fatalf("after the loss: holds %v, lost recently %v (%v); want none and true", held, recently, err)
	}
	// After the loss the wallet reloads the whole balance: 10 holds fit again.
	admitted := 0
	for i := range 20 {
		if _, r, err := f.h.Reserve(ctx, f.req(fmt.Sprint("after", i), concReserve, concReserve)); err != nil {
			t.Fatal(err)
		} else if r == nil {
			admitted++
		}
	}
	if admitted != 10 {
		t.Fatalf("%d admitted after the loss, want 10 (the balance, reloaded)", admitted)
	}
	// Every request, lost ones too, settles at its whole hold: the overspend is the lost holds.
	for i := range 6 {
		f.settle(t, fmt.Sprint("lost", i), concReserve)
	}
	for i := range 20 {
		if i < admitted {
			f.settle(t, fmt.Sprint("after", i), concReserve)
		}
	}
	spent := 10*concReserve - f.balance(t)
	if spent != lost+10*concReserve {
		t.Fatalf("PostgreSQL charged %d, want exactly %d", spent, lost+10*concReserve)
	}
	if over := spent - 10*concReserve; over > lost {
		t.Fatalf("overspent %d, more than the %d the lost holds held", over, lost)
	}
	// The wallets reload what PostgreSQL has: nothing is left, so the next one is refused.
	if _, r, err := f.h.Reserve(ctx, f.req("next", 1, 1)); err != nil || r == nil || r.Kind != store.RefuseInsufficientBalance {
		t.Fatalf("after the settlements: %+v %v, want insufficient balance", r, err)
	}
	f.wantCopyAgrees(t)
	if h := f.held(t); h.Sum() != 0 || h.Holds != 0 {
		t.Fatalf("held %+v", h)
	}
}

// racingLoader runs a settlement between the PostgreSQL read of a load and its write to
// Redis, once.
type racingLoader struct {
	f    *fixture
	once sync.Once
	err  error
}

func (l *racingLoader) LoadWallets(ctx context.Context, userID, keyID, groupID int64, now time.Time) (store.WalletState, error) {
	w, err := l.f.st.LoadWallets(ctx, userID, keyID, groupID, now)
	l.once.Do(func() { l.err = l.f.settleNoT("settled", 3*concReserve) })
	return w, err
}

// A settlement between a load's read and its write is not lost: the load's write is
// refused (its token is gone) and the admission loads again.
func TestLoadLosesToSettlement(t *testing.T) {
	t.Parallel()
	f := newFixture(t, seed{balance: 10 * concReserve})
	l := &racingLoader{f: f}
	f.h.load = l
	loads := 0
	f.h.onLoad = func() { loads++ }
	hold, r, err := f.h.Reserve(t.Context(), f.req("req", 10*concReserve, 1))
	if err != nil || r != nil || l.err != nil {
		t.Fatalf("reserve: %v %+v %v", err, r, l.err)
	}
	if loads != 2 {
		t.Fatalf("%d loads, want 2 (the first lost to the settlement)", loads)
	}
	if hold.AmountMicros != 7*concReserve {
		t.Fatalf("held %d, want %d: the settled 3 M must not be available", hold.AmountMicros, 7*concReserve)
	}
	f.wantCopyAgrees(t)
}
