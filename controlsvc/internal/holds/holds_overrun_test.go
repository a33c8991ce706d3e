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

// runOverrunning is runConcurrent with every admitted request settling above its hold, by
// up to half of concReserve: it returns what was charged, the most requests in flight at
// once and the largest overrun.
func runOverrunning(t *testing.T, f *fixture) (charged, maxInFlight, largestOver int64) {
	t.Helper()
	var inFlight, maxSeen, total, over atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for i := range 10 {
				id := fmt.Sprintf("o%d-%d", w, i)
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
				o := rng.Int64N(concReserve/2 + 1)
				for m := over.Load(); o > m && !over.CompareAndSwap(m, o); m = over.Load() {
				}
				if err := f.settleNoT(id, hold.AmountMicros+o); err != nil {
					errs <- err
					return
				}
				total.Add(hold.AmountMicros + o)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return total.Load(), maxSeen.Load(), over.Load()
}

// Requests that overrun their holds spend at most the budget plus the overruns of the
// requests in flight together: with at most 10 in flight on a budget worth 10 holds, the
// budget + 10 × the largest overrun (docs/billing.md, "Bound"). Each budget kind.
func TestConcurrentOverrunsAreBounded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		seed seed
	}{
		{"balance", seed{balance: 10 * concReserve}},
		{"key quota", seed{balance: 1 << 40, quota: ptr(10 * concReserve)}},
		{"subscription window", seed{mode: store.BillingSubscription, limits: []*int64{ptr(10 * concReserve)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.seed)
			charged, inFlight, over := runOverrunning(t, f)
			if inFlight > 10 {
				t.Errorf("%d requests in flight at once on a budget worth 10", inFlight)
			}
			if bound := 10*concReserve + 10*over; charged > bound {
				t.Errorf("charged %d, beyond the budget + 10 overruns %d", charged, bound)
			}
			if charged <= 10*concReserve {
				t.Errorf("charged %d, within the budget: the run overran nothing", charged)
			}
			// Once overspent, nothing more is admitted.
			if _, r, err := f.h.Reserve(t.Context(), f.req("after", 1, 1)); err != nil || r == nil {
				t.Errorf("admission after the overspend: %+v, %v; want a refusal", r, err)
			}
			if h := f.held(t); h.Sum() != 0 || h.Holds != 0 {
				t.Errorf("held %+v after every request ended", h)
			}
			f.wantCopyAgrees(t)
		})
	}
}

// Requests one after another spend at most the budget plus the largest single overrun:
// after an overrun the budget is spent and the next admission is refused.
func TestSequentialOverrunIsAtMostTheLargestOverrun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, seed{balance: 10 * concReserve})
	rng := rand.New(rand.NewPCG(7, 7))
	var spent, largest int64
	for i := range 30 {
		id := fmt.Sprint("seq", i)
		hold, r, err := f.h.Reserve(t.Context(), f.req(id, concReserve, concReserve))
		if err != nil {
			t.Fatal(err)
		}
		if r != nil {
			if r.Kind != store.RefuseInsufficientBalance || r.Message != store.MsgInsufficientBalance {
				t.Fatalf("refusal %+v, want insufficient balance", r)
			}
			break
		}
		over := rng.Int64N(concReserve / 2)
		largest = max(largest, over)
		f.settle(t, id, hold.AmountMicros+over)
		spent += hold.AmountMicros + over
	}
	if spent > 10*concReserve+largest {
		t.Errorf("spent %d, beyond the budget + the largest overrun %d", spent, 10*concReserve+largest)
	}
	if spent <= 10*concReserve-concReserve {
		t.Errorf("spent %d: refused before the budget was used", spent)
	}
}
