package slots

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustEnter(t *testing.T, s *Slots, e Entry) int {
	t.Helper()
	res, err := s.Enter(context.Background(), e)
	if err != nil {
		t.Fatalf("Enter(%+v): %v", e, err)
	}
	return res
}

// 200 concurrent entrants, each leaving again once served, never hold more than 5 leases.
func TestConcurrentEntrantsNeverExceedLimit(t *testing.T) {
	t.Parallel()
	s := New(newRedis(t), time.Minute)
	const limit, n = 5, 200
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := Entry{Kind: KindUser, ID: 7, GrantID: fmt.Sprintf("g%d", i), Limit: limit, MaxWaiters: n, WaitTTL: time.Minute}
			for {
				res, err := s.Enter(context.Background(), e)
				if err != nil {
					t.Error(err)
					return
				}
				if res == Held {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			cur := held.Add(1)
			for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
			}
			time.Sleep(time.Millisecond)
			held.Add(-1)
			if err := s.Leave(context.Background(), KindUser, 7, e.GrantID); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > limit || p == 0 {
		t.Fatalf("peak of %d leases held, limit %d", p, limit)
	}
	l, err := s.Loads(context.Background(), KindUser, []int64{7})
	if err != nil || l[7] != (Load{}) {
		t.Fatalf("after everyone left: %+v %v", l[7], err)
	}
}

func TestEnterServesWaitersInArrivalOrder(t *testing.T) {
	t.Parallel()
	s := New(newRedis(t), time.Minute)
	entry := func(g string, maxW int) Entry {
		return Entry{Kind: KindAccount, ID: 3, GrantID: g, Limit: 1, MaxWaiters: maxW, WaitTTL: time.Minute}
	}
	tests := []struct {
		name string
		give Entry
		want int
	}{
		{name: "first takes the free slot", give: entry("a", 3), want: Held},
		{name: "second queues", give: entry("b", 3), want: Queued},
		{name: "third queues", give: entry("c", 3), want: Queued},
		{name: "newcomer without queueing is refused", give: entry("x", 0), want: Refused},
		{name: "fourth queues", give: entry("d", 3), want: Queued},
		{name: "fifth finds the queue full", give: entry("e", 3), want: Refused},
		{name: "third asks again, not its turn", give: entry("c", 3), want: Queued},
	}
	for _, tt := range tests {
		if got := mustEnter(t, s, tt.give); got != tt.want {
			t.Fatalf("%s: Enter = %d, want %d", tt.name, got, tt.want)
		}
	}
	// Each release serves exactly the head of the queue, even when a later waiter asks first.
	for _, step := range []struct{ leave, later, head string }{{"a", "c", "b"}, {"b", "d", "c"}, {"c", "", "d"}} {
		if err := s.Leave(context.Background(), KindAccount, 3, step.leave); err != nil {
			t.Fatal(err)
		}
		if step.later != "" {
			if got := mustEnter(t, s, entry(step.later, 3)); got != Queued {
				t.Fatalf("after %s left, %s (behind %s) got %d", step.leave, step.later, step.head, got)
			}
		}
		if got := mustEnter(t, s, entry(step.head, 3)); got != Held {
			t.Fatalf("after %s left, head %s got %d", step.leave, step.head, got)
		}
	}
}

// A queue entry whose waiter vanished (its controlsvc died) leaves by itself.
func TestQueueEntryExpires(t *testing.T) {
	t.Parallel()
	s := New(newRedis(t), time.Minute)
	e := Entry{Kind: KindUser, ID: 9, Limit: 1, MaxWaiters: 5, WaitTTL: 300 * time.Millisecond}
	e.GrantID = "holder"
	mustEnter(t, s, e)
	e.GrantID = "ghost"
	if got := mustEnter(t, s, e); got != Queued {
		t.Fatalf("ghost: %d", got)
	}
	time.Sleep(500 * time.Millisecond)
	l, err := s.Loads(context.Background(), KindUser, []int64{9})
	if err != nil || l[9] != (Load{Active: 1}) {
		t.Fatalf("loads = %+v %v, want the holder only", l[9], err)
	}
}
