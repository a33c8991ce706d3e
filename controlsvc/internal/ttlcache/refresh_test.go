package ttlcache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// A hit past refreshAfter answers with the value held, without waiting, and the
// background load replaces it; a hit before refreshAfter loads nothing.
func TestRefreshAheadAnswersWithoutWaiting(t *testing.T) {
	t.Parallel()
	c := New[string, int](5*time.Second, 8).WithRefresh(2 * time.Second)
	now := time.Unix(1000, 0)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	c.now = func() time.Time { return time.Unix(0, clock.Load()) }
	c.Put("k", 1)

	var loads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (int, error) {
		loads.Add(1)
		<-release // the caller must not be waiting on this
		return 2, nil
	}
	ctx := context.Background()
	if v, err := c.Get(ctx, "k", load); err != nil || v != 1 || loads.Load() != 0 {
		t.Fatalf("young hit: %d, %v, %d loads; want 1, nil, 0", v, err, loads.Load())
	}
	clock.Store(now.Add(3 * time.Second).UnixNano())
	done := make(chan int, 1)
	go func() {
		v, _ := c.Get(ctx, "k", load)
		done <- v
	}()
	select {
	case v := <-done:
		if v != 1 {
			t.Fatalf("stale hit answered %d, want the held 1", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stale hit waited for its refresh")
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, ok := c.Peek("k"); ok && v == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background refresh never stored its value")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
}

// An expired entry is loaded with the caller waiting, refresh or not.
func TestRefreshAheadExpiredEntryWaits(t *testing.T) {
	t.Parallel()
	c := New[string, int](5*time.Second, 8).WithRefresh(2 * time.Second)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	c.Put("k", 1)
	now = now.Add(6 * time.Second)
	v, err := c.Get(context.Background(), "k", func(context.Context) (int, error) { return 3, nil })
	if err != nil || v != 3 {
		t.Fatalf("expired entry: %d, %v; want the loaded 3", v, err)
	}
}

// InvalidateWhere drops exactly the picked entries, and a load begun before it stores
// nothing (it may have read the row before the change).
func TestInvalidateWhereIsTargeted(t *testing.T) {
	t.Parallel()
	c := New[string, int](time.Minute, 8)
	for i, k := range []string{"a", "b", "c", "d"} {
		c.Put(k, i)
	}
	gen := c.Generation()
	if n := c.InvalidateWhere(func(_ string, v int) bool { return v%2 == 1 }); n != 2 {
		t.Fatalf("dropped %d, want 2", n)
	}
	for _, tt := range []struct {
		k    string
		want bool
	}{{"a", true}, {"b", false}, {"c", true}, {"d", false}} {
		if _, ok := c.Peek(tt.k); ok != tt.want {
			t.Errorf("%s held = %v, want %v", tt.k, ok, tt.want)
		}
	}
	c.PutAt("b", 9, gen) // a load that started before the change
	if _, ok := c.Peek("b"); ok {
		t.Fatal("a load begun before the invalidation stored its result")
	}
}
