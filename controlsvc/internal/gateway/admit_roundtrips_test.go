package gateway

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// rtCounter is a go-redis hook that records each round trip (one command, or one pipeline)
// and the commands it carried, while on; the routing explanations' batches, written by
// their own goroutine and shared by many admissions, are not an admission's.
type rtCounter struct {
	mu    sync.Mutex
	on    bool
	trips []string
}

func (c *rtCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *rtCounter) record(cmds []redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on {
		return
	}
	names := make([]string, len(cmds))
	for i, cmd := range cmds {
		names[i] = cmd.Name()
	}
	switch names[0] {
	case "rpush":
		return // routing.Writer's batch of explanations: its own goroutine, not the admission's
	case "hello", "client":
		return // a new pooled connection's handshake, once per connection
	}
	c.trips = append(c.trips, strings.Join(names, "+"))
}

func (c *rtCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.record([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (c *rtCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.record(cmds)
		return next(ctx, cmds)
	}
}

func (c *rtCounter) set(on bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = on
	out := c.trips
	c.trips = nil
	return out
}

var _ redis.Hook = (*rtCounter)(nil)

// TestFirstAdmissionRoundTrips counts the Redis round trips of a first admission on the
// common path: key cached, one candidate account with a free slot, wallet loaded, scripts
// cached by Redis (issue 15 §1).
func TestFirstAdmissionRoundTrips(t *testing.T) {
	e := newEnv(t)
	f := e.seedFixture(t, 8, "openai")
	acc := e.seedAccount(t, f.group, accountSeed{concurrency: 8})
	c := &rtCounter{}
	e.rdb.AddHook(c)

	e.mustGrant(t, admitRequest{RequestID: "req_warm", APIKey: f.key, Model: "gpt-4o"}) // caches, wallet load
	c.set(true)
	g := e.mustGrant(t, admitRequest{RequestID: "req_counted", APIKey: f.key, Model: "gpt-4o"})
	trips := c.set(false)
	if g.AccountID != acc {
		t.Fatalf("granted account %d, want %d", g.AccountID, acc)
	}
	t.Logf("round trips: %q", trips)
	const want = 1 // the slot grant pipeline, carrying the reserve script (holdfold.go)
	if len(trips) != want {
		t.Fatalf("first admission made %d Redis round trips %q, want %d", len(trips), trips, want)
	}
	if _, ok := e.hold(t, f.user, "req_counted"); !ok {
		t.Fatal("no hold for the counted admission")
	}
	if n := e.count(t, "user", f.user); n != 2 {
		t.Fatalf("user slots = %d, want 2", n)
	}
}
