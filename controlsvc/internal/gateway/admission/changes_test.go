package admission

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
)

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// secondInstance is another controlsvc's admission on e's database and Redis, with its
// own caches and change bus.
func (e *env) secondInstance(t *testing.T, bus *changes.Bus) *env {
	t.Helper()
	other := *e
	other.svc = newAdmitter(t, e.st, e.rdb, Config{Wait: testWait, Changes: bus}, 0)
	return &other
}

// heard is a bus handler that signals each event it gets.
func heard(bus *changes.Bus) <-chan changes.Event {
	ch := make(chan changes.Event, 64)
	bus.Subscribe(func(e changes.Event) {
		select {
		case ch <- e:
		default:
		}
	})
	return ch
}

// A key disabled on one instance is refused by another at once, long before its cache
// entry expires, and only that key's entry goes: another key of the same group stays
// cached.
func TestKeyChangeReachesAnotherInstanceAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	busA := changes.New(e.rdb, nil) // what instance A's admin API publishes on
	busA.Start()
	t.Cleanup(busA.Close)
	busB := changes.New(e.rdb, nil)
	b := e.secondInstance(t, busB) // subscribes B's caches first
	onB := heard(busB)
	busB.Start()
	t.Cleanup(busB.Close)

	// The subscription is asynchronous: announce until B hears it.
	probe := changes.Event{Kind: changes.Group, ID: 1 << 40}
	deadline := time.Now().Add(5 * time.Second)
	for heardProbe := false; !heardProbe; {
		if err := busA.Publish(context.Background(), probe); err != nil {
			t.Fatal(err)
		}
		select {
		case <-onB:
			heardProbe = true
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("instance B never heard instance A")
		}
	}

	f := e.seedFixture(t, 5, "openai")
	e.seedAccount(t, f.group, accountSeed{})
	other := e.seedKey(t, f.user, f.group)
	loaded := time.Now()
	b.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o"})
	b.mustGrant(t, Request{APIKey: other, Model: "gpt-4o"})

	var id int64
	if err := e.st.Pool.QueryRow(context.Background(), `UPDATE api_keys SET status = 'disabled' WHERE key_hash = $1 RETURNING id`,
		keyHash(f.key)).Scan(&id); err != nil {
		t.Fatal(err)
	}
	want := changes.Event{Kind: changes.Key, ID: id}
	if err := busA.Publish(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	for got := (changes.Event{}); got != want; {
		select {
		case got = <-onB:
		case <-time.After(5 * time.Second):
			t.Fatal("instance B never heard the key's change")
		}
	}
	res := b.admit(t, Request{APIKey: f.key, Model: "gpt-4o"})
	if took := time.Since(loaded); took >= CacheTTL {
		t.Skipf("the test took %v, past the cache TTL: the refusal would prove nothing", took)
	}
	if res.status != http.StatusUnauthorized {
		t.Fatalf("status %d on instance B right after the key was disabled on A, want 401", res.status)
	}
	if _, ok := b.svc.keys.Peek(keyHash(other)); !ok {
		t.Fatal("the change of one key dropped another key's entry")
	}
}

// Each kind of change drops its entity's entries and no other's.
func TestApplyChangeIsTargeted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 5, "openai")
	g := e.seedFixture(t, 5, "openai")
	accF := e.seedAccount(t, f.group, accountSeed{})
	e.seedAccount(t, g.group, accountSeed{})
	tests := []struct {
		name      string
		event     func() changes.Event
		fKeyGone  bool
		fAccsGone bool
	}{
		{"user", func() changes.Event { return changes.Event{Kind: changes.User, ID: f.user} }, true, false},
		{"group", func() changes.Event { return changes.Event{Kind: changes.Group, ID: f.group} }, true, true},
		{"members", func() changes.Event { return changes.Event{Kind: changes.Members, ID: f.group} }, false, true},
		{"account", func() changes.Event { return changes.Event{Kind: changes.Account, ID: accF} }, false, true},
		{"unrelated account", func() changes.Event { return changes.Event{Kind: changes.Account, ID: accF + 1000} }, false, false},
	}
	for _, tt := range tests {
		e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o"})
		e.mustGrant(t, Request{APIKey: g.key, Model: "gpt-4o"})
		e.svc.applyChange(tt.event())
		_, fKey := e.svc.keys.Peek(keyHash(f.key))
		_, gKey := e.svc.keys.Peek(keyHash(g.key))
		_, fAccs := e.svc.accounts.Peek(groupKey{groupID: f.group, platform: "openai"})
		_, gAccs := e.svc.accounts.Peek(groupKey{groupID: g.group, platform: "openai"})
		if fKey == tt.fKeyGone || fAccs == tt.fAccsGone || !gKey || !gAccs {
			t.Errorf("%s: f's key held %v, f's accounts held %v, g's key %v, g's accounts %v; want %v, %v, true, true",
				tt.name, fKey, fAccs, gKey, gAccs, !tt.fKeyGone, !tt.fAccsGone)
		}
	}
}
