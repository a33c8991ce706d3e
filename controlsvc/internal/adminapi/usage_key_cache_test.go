package adminapi

import (
	"context"
	"errors"
	"testing"
)

// Unknown keys are refused from memory until an admin write may have made one usable;
// answers are kept for their TTL; errors are never kept.
func TestKeyUsageCacheRemembersUnknownKeys(t *testing.T) {
	t.Parallel()
	c := newKeyUsageCache()
	loads := map[string]int{}
	unknown := true
	load := func(h string) func(context.Context) ([]byte, error) {
		return func(context.Context) ([]byte, error) {
			loads[h]++
			switch {
			case h == "broken":
				return nil, errors.New("database down")
			case unknown:
				return nil, errUnknownKey{}
			}
			return []byte("answer " + h), nil
		}
	}
	ctx := context.Background()
	for range 3 {
		if _, err := c.get(ctx, "k", load("k")); !errors.As(err, new(errUnknownKey)) {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if loads["k"] != 1 {
		t.Errorf("an unknown key loaded %d times, want 1", loads["k"])
	}
	// The key is created (or enabled): the next call asks the database again.
	unknown = false
	c.forgetUnknown()
	for range 3 {
		if v, err := c.get(ctx, "k", load("k")); err != nil || string(v) != "answer k" {
			t.Fatalf("known key: %q, %v", v, err)
		}
	}
	if loads["k"] != 2 {
		t.Errorf("key loaded %d times, want 2", loads["k"])
	}
	for range 2 {
		if _, err := c.get(ctx, "broken", load("broken")); err == nil || errors.As(err, new(errUnknownKey)) {
			t.Fatalf("failing load: %v", err)
		}
	}
	if loads["broken"] != 2 {
		t.Errorf("a failing load ran %d times, want 2 (errors are not cached)", loads["broken"])
	}
}
