package gateway

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
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

// TestFirstAdmissionRoundTrips counts the Redis round trips of a first admission
// (docs/design.md, "The hot path: one request, hop by hop"). On the common path (key cached, one candidate with a free slot, wallet loaded) the
// hold rides in the slot grant's pipeline: one round trip. Off it, bill holds after the
// grant as before; the hold is the same either way.
func TestFirstAdmissionRoundTrips(t *testing.T) {
	cases := []struct {
		name     string
		accounts int
		warm     bool // an admission before: key cached, wallet loaded
		want     int
	}{
		{name: "common path", accounts: 1, warm: true, want: 1},
		// The pipelined reserve answers "load"; bill reserves again ("load" again), then with the load.
		{name: "wallet not loaded", accounts: 1, warm: false, want: 3},
		{name: "two candidates", accounts: 2, warm: true, want: 3}, // loads, account entry, reserve
	}
	amounts := map[string]int64{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			f := e.seedFixture(t, 8, "openai")
			for range tc.accounts {
				e.seedAccount(t, f.group, accountSeed{concurrency: 8})
			}
			c := &rtCounter{}
			e.rdb.AddHook(c)
			if tc.warm {
				e.mustGrant(t, admission.Request{RequestID: "req_warm", APIKey: f.key, Model: "gpt-4o", InputBytes: 400})
			} else {
				// Another user's admission: Redis caches the scripts, not this user's wallet.
				o := e.seedFixture(t, 8, "openai")
				e.seedAccount(t, o.group, accountSeed{concurrency: 8})
				e.mustGrant(t, admission.Request{RequestID: "req_other", APIKey: o.key, Model: "gpt-4o"})
			}
			c.set(true)
			g := e.mustGrant(t, admission.Request{RequestID: "req_counted", APIKey: f.key, Model: "gpt-4o", InputBytes: 400})
			trips := c.set(false)
			t.Logf("round trips: %q", trips)
			if len(trips) != tc.want {
				t.Fatalf("first admission made %d Redis round trips %q, want %d", len(trips), trips, tc.want)
			}
			h, ok := e.hold(t, f.user, "req_counted")
			if !ok || h.AmountMicros <= 0 {
				t.Fatalf("hold of the counted admission = %+v, %v; want one", h, ok)
			}
			amounts[tc.name] = h.AmountMicros
			if n := e.count(t, "account", g.AccountID); n < 1 {
				t.Fatalf("account %d slots = %d, want its grant's", g.AccountID, n)
			}
		})
	}
	for name, a := range amounts {
		if a != amounts["two candidates"] {
			t.Errorf("%s held %d, the unfolded path %d: the fold must hold what bill holds", name, a, amounts["two candidates"])
		}
	}
}
