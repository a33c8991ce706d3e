package holds

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// runOverrunning is runWorkers with every admitted request settling above its hold, by up
// to half of concReserve: it returns what was charged, the most requests in flight at once
// and the largest overrun.
func runOverrunning(t *testing.T, f *fixture) (charged, maxInFlight, largestOver int64) {
	t.Helper()
	var over atomic.Int64
	charged, maxInFlight = runWorkers(t, f, "o", 2, func(rng *rand.Rand, held int64) (int64, bool) {
		o := rng.Int64N(concReserve/2 + 1)
		for m := over.Load(); o > m && !over.CompareAndSwap(m, o); m = over.Load() {
		}
		return held + o, false
	})
	return charged, maxInFlight, over.Load()
}

// Requests that overrun their holds spend at most the budget plus the overruns of the
// requests in flight together: with at most 10 in flight on a budget worth 10 holds, the
// budget + 10 × the largest overrun (docs/billing.md, "Bound"). Each budget kind.
func TestConcurrentOverrunsAreBounded(t *testing.T) {
	t.Parallel()
	for _, tt := range budgetKinds {
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
