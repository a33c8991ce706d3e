package ttlcache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	c := New[string, int](time.Minute, 3)
	c.Put("a", 1)
	c.Put("b", 2)
	c.Put("c", 3)
	if _, ok := c.Peek("a"); !ok { // a is now the most recently used
		t.Fatal("a missing")
	}
	c.Put("d", 4)
	tests := []struct {
		key  string
		want bool
	}{{"a", true}, {"b", false}, {"c", true}, {"d", true}}
	for _, tt := range tests {
		if got := c.Known(tt.key); got != tt.want {
			t.Errorf("known(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
	if n := c.Len(); n != 3 {
		t.Fatalf("%d entries after an eviction, want 3 (one evicted, not all)", n)
	}
}

func TestExpiredEntryStaysKnown(t *testing.T) {
	t.Parallel()
	c := New[string, int](time.Second, 3)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	c.Put("a", 1)
	now = now.Add(2 * time.Second)
	if _, fresh := c.Peek("a"); fresh {
		t.Fatal("an expired entry read as fresh")
	}
	if !c.Known("a") {
		t.Fatal("an expired entry is no longer known")
	}
}

// A flood of new keys evicts the least recently used entries one at a time, never all;
// expired entries are not served.
func TestFloodEvictsOneAtATime(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	l := New[string, int](time.Second, 3)
	l.now = func() time.Time { return now }
	for i := range 3 {
		l.Put(fmt.Sprint(i), i)
	}
	l.Peek("0") // 1 is now the least recently used
	l.Put("3", 3)
	if l.Known("1") {
		t.Error("the least recently used entry stayed")
	}
	for _, k := range []string{"0", "2", "3"} {
		if _, ok := l.Peek(k); !ok {
			t.Errorf("entry %s evicted", k)
		}
	}
	for i := range 1000 {
		l.Put(fmt.Sprint("flood", i), i)
	}
	if n := l.Len(); n != 3 {
		t.Errorf("%d entries, want at most 3", n)
	}
	now = now.Add(time.Second)
	if _, ok := l.Peek("flood999"); ok {
		t.Error("an expired entry was served")
	}
}

// A load that began before an invalidation stores nothing; errors are never stored.
func TestInvalidationWinsOverEarlierLoads(t *testing.T) {
	t.Parallel()
	c := New[string, int](time.Minute, 10)
	gen := c.Generation()
	c.Invalidate()
	c.PutAt("stale", 1, gen)
	if c.Known("stale") {
		t.Fatal("a value read before an invalidation was stored after it")
	}
	ctx := context.Background()
	loads := 0
	failing := func(context.Context) (int, error) { loads++; return 0, errors.New("down") }
	for i := 0; i < 2; i++ {
		if _, err := c.Get(ctx, "k", failing); err == nil {
			t.Fatal("a failing load returned no error")
		}
	}
	if loads != 2 {
		t.Fatalf("a failing load ran %d times, want 2 (errors are not cached)", loads)
	}
}
