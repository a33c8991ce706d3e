package changes

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// recorder collects the events a bus delivers.
type recorder struct {
	mu  sync.Mutex
	got []Event
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e)
}

func (r *recorder) waitFor(t *testing.T, want Event) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, e := range r.got {
			if e == want {
				r.mu.Unlock()
				return
			}
		}
		r.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("event %s never arrived", want)
}

// An event published on one instance reaches the publisher at once and another instance's
// handlers through Redis.
func TestEventReachesEveryInstance(t *testing.T) {
	url := testenv.RedisURL(t)
	a, b := New(testenv.RedisClient(t, url), nil), New(testenv.RedisClient(t, url), nil)
	var ra, rb recorder
	a.Subscribe(ra.add)
	b.Subscribe(rb.add)
	a.Start()
	b.Start()
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)

	// The subscription is asynchronous: publish until the other instance hears one.
	probe := Event{Kind: Group, ID: 1}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := a.Publish(context.Background(), probe); err != nil {
			t.Fatal(err)
		}
		rb.mu.Lock()
		n := len(rb.got)
		rb.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := Event{Kind: Account, ID: 42}
	if err := a.Publish(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	ra.mu.Lock()
	local := false
	for _, e := range ra.got {
		local = local || e == want
	}
	ra.mu.Unlock()
	if !local {
		t.Fatal("the publisher's own handlers did not get the event before Publish returned")
	}
	rb.waitFor(t, want)
}

func TestParseRefusesWhatWasNotPublished(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Event
		ok   bool
	}{
		{"key:7", Event{Key, 7}, true},
		{"user:1", Event{User, 1}, true},
		{"group:9", Event{Group, 9}, true},
		{"account:3", Event{Account, 3}, true},
		{"members:4", Event{Members, 4}, true},
		{"account:0", Event{}, false},
		{"account:-1", Event{}, false},
		{"price:3", Event{}, false},
		{"key", Event{}, false},
		{"key:x", Event{}, false},
		{"", Event{}, false},
	}
	for _, tt := range tests {
		got, ok := parse(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parse(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
