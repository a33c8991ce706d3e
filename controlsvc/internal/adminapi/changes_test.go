package adminapi

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/changes"
)

// eventLog records what the API publishes (delivered locally by Publish before it
// returns, so no subscription is needed).
type eventLog struct {
	mu  sync.Mutex
	got []changes.Event
}

func (l *eventLog) take() []changes.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := l.got
	l.got = nil
	return got
}

// Every write that admission caches publishes the change of exactly its entity.
func TestAdminWritesPublishTheirEntity(t *testing.T) {
	t.Parallel()
	log := &eventLog{}
	e := newEnvWith(t, func(o *Options, rdb *redis.Client) {
		bus := changes.New(rdb, nil)
		bus.Subscribe(func(ev changes.Event) {
			log.mu.Lock()
			defer log.mu.Unlock()
			log.got = append(log.got, ev)
		})
		o.Changes = bus
	})
	user := e.createUser("events")
	group := e.createGroup("events", "openai")
	other := e.createGroup("events-other", "openai")
	log.take()
	account := e.createAccount("events", group)
	keyID, _ := e.createKey(user, group)
	ev := func(k changes.Kind, id int64) changes.Event { return changes.Event{Kind: k, ID: id} }
	created := log.take()
	wantCreated := []changes.Event{ev(changes.Account, account), ev(changes.Members, group), ev(changes.Key, keyID)}
	if fmt.Sprint(created) != fmt.Sprint(wantCreated) {
		t.Fatalf("creating an account and a key published %v, want %v", created, wantCreated)
	}

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		want   []changes.Event
	}{
		{"user patch", http.MethodPatch, fmt.Sprintf("/users/%d", user), `{"concurrency":3}`, []changes.Event{ev(changes.User, user)}},
		{"balance", http.MethodPost, fmt.Sprintf("/users/%d/balance", user), `{"amount_usd":1,"note":"top-up"}`, []changes.Event{ev(changes.User, user)}},
		{"group patch", http.MethodPatch, fmt.Sprintf("/groups/%d", group), `{"rate_multiplier":1.5}`, []changes.Event{ev(changes.Group, group)}},
		{"account moves group", http.MethodPatch, fmt.Sprintf("/accounts/%d", account), fmt.Sprintf(`{"group_ids":[%d]}`, other),
			[]changes.Event{ev(changes.Account, account), ev(changes.Members, other)}},
		{"account state cleared", http.MethodPost, fmt.Sprintf("/accounts/%d/clear-state", account), `{}`, []changes.Event{ev(changes.Account, account)}},
		{"key patch", http.MethodPatch, fmt.Sprintf("/api-keys/%d", keyID), `{"status":"disabled"}`, []changes.Event{ev(changes.Key, keyID)}},
		{"key delete", http.MethodDelete, fmt.Sprintf("/api-keys/%d", keyID), ``, []changes.Event{ev(changes.Key, keyID)}},
		{"account delete", http.MethodDelete, fmt.Sprintf("/accounts/%d", account), ``, []changes.Event{ev(changes.Account, account)}},
		{"refused patch publishes nothing", http.MethodPatch, fmt.Sprintf("/users/%d", user), `{"concurrency":-1}`, nil},
	}
	for _, tt := range tests {
		var body any
		if tt.body != "" {
			body = tt.body
		}
		status, resp := e.call(tt.method, "/api/v1/admin"+tt.path, body)
		if tt.want != nil && status >= 300 {
			t.Fatalf("%s: status %d: %s", tt.name, status, resp)
		}
		if got := log.take(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s published %v, want %v", tt.name, got, tt.want)
		}
	}
}
