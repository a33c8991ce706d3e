package admission

import (
	"context"
	"testing"
	"time"
)

import ()

// The abuse bound: past countTokensPerSecond calls in one second a user gets estimates, so
// count_tokens cannot become free load on the pool; other users and the next second are not
// affected.
func TestCountTokensBoundPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	now := time.Unix(2_000_000_000, 0)
	for i := 1; i <= countTokensPerSecond+1; i++ {
		ok, err := e.svc.countTokensAllowed(ctx, 42, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := i <= countTokensPerSecond; ok != want {
			t.Fatalf("call %d in one second: allowed %v, want %v", i, ok, want)
		}
	}
	for _, c := range []struct {
		name string
		user int64
		at   time.Time
	}{{"another user", 43, now}, {"the next second", 42, now.Add(time.Second)}} {
		if ok, err := e.svc.countTokensAllowed(ctx, c.user, c.at); err != nil || !ok {
			t.Fatalf("%s: allowed %v (%v), want true", c.name, ok, err)
		}
	}
}
