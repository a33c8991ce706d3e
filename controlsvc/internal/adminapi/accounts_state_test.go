package adminapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// countingNotifier counts the account changes the API announces.
type countingNotifier struct{ n atomic.Int64 }

func (c *countingNotifier) AccountsChanged() { c.n.Add(1) }

var _ AccountNotifier = (*countingNotifier)(nil)

// newStateEnv is newEnv whose API tells n about account writes.
func newStateEnv(t *testing.T) (*env, *countingNotifier) {
	t.Helper()
	e := newEnv(t)
	n := &countingNotifier{}
	api := New(Options{Store: e.st, Slots: e.slots, AdminToken: testToken, Accounts: n, Breakers: breaker.New(e.rdb),
		Log: slog.New(slog.NewJSONHandler(e.logs, nil))})
	r := mux.NewRouter()
	api.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e.srv = srv
	return e, n
}

// stateOnly decodes an account's id, status and raw state.
type stateOnly struct {
	ID     int64           `json:"id"`
	Status string          `json:"status"`
	State  json.RawMessage `json:"state"`
}

const emptyState = `{"rate_limited_until":null,"overloaded_until":null,"paused_until":null,` +
	`"pause_reason":null,"disabled_reason":null,"model_blocks":{}}`

func mark(t *testing.T, st *store.Store, id int64, m store.AccountMark) store.MarkResult {
	t.Helper()
	res, err := st.MarkAccount(context.Background(), id, m)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestAccountStateShowsMarksInForce(t *testing.T) {
	t.Parallel()
	e, _ := newStateEnv(t)
	ctx := context.Background()
	g := e.createGroup("g", "openai")
	id := e.createAccount("acc", g)
	path := "/api/v1/admin/accounts/" + itoa(id)

	var a stateOnly
	e.mustCall(http.MethodGet, path, nil, http.StatusOK, &a)
	if string(a.State) != emptyState {
		t.Fatalf("state of a fresh account = %s, want %s", a.State, emptyState)
	}

	now := time.Now().Truncate(time.Second)
	mark(t, e.st, id, store.AccountMark{Kind: store.MarkRateLimited, Until: now.Add(10 * time.Minute)})
	mark(t, e.st, id, store.AccountMark{Kind: store.MarkOverloaded, Until: now.Add(-time.Minute)}) // over
	mark(t, e.st, id, store.AccountMark{Kind: store.MarkPaused, Until: now.Add(5 * time.Minute), Reason: "upstream 401"})
	mark(t, e.st, id, store.AccountMark{Kind: store.MarkModelBlocked, Model: "gpt-4o-2024-08-06", Until: now.Add(30 * time.Minute)})
	if _, err := e.st.Pool.Exec(ctx, `INSERT INTO account_model_blocks (account_id, model, blocked_until)
		VALUES ($1, 'expired', now() - interval '1 second')`, id); err != nil {
		t.Fatal(err)
	}
	utc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	want := `{"rate_limited_until":"` + utc(now.Add(10*time.Minute)) + `","overloaded_until":null,` +
		`"paused_until":"` + utc(now.Add(5*time.Minute)) + `","pause_reason":"upstream 401","disabled_reason":null,` +
		`"model_blocks":{"gpt-4o-2024-08-06":"` + utc(now.Add(30*time.Minute)) + `"}}`
	e.mustCall(http.MethodGet, path, nil, http.StatusOK, &a)
	if string(a.State) != want {
		t.Fatalf("state = %s\nwant    %s", a.State, want)
	}
	var list listBody[stateOnly]
	e.mustCall(http.MethodGet, "/api/v1/admin/accounts", nil, http.StatusOK, &list)
	if len(list.Items) != 1 || string(list.Items[0].State) != want {
		t.Fatalf("list items = %+v, want the same state", list.Items)
	}

	// A pause that ended shows neither its deadline nor its reason.
	if _, err := e.st.Pool.Exec(ctx, `UPDATE accounts SET paused_until = now() - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	e.mustCall(http.MethodGet, path, nil, http.StatusOK, &a)
	if strings.Contains(string(a.State), "upstream 401") || !strings.Contains(string(a.State), `"paused_until":null`) {
		t.Fatalf("state after the pause ended = %s", a.State)
	}
}

func TestClearAccountStateEndpoint(t *testing.T) {
	t.Parallel()
	e, notified := newStateEnv(t)
	g := e.createGroup("g", "openai")
	now := time.Now()
	strike := func(id int64, i int) store.MarkResult {
		return mark(t, e.st, id, store.AccountMark{Kind: store.MarkForbidden, Until: now.Add(10 * time.Minute),
			Reason: "upstream 403", Strikes: store.StrikeRule{At: now.Add(time.Duration(i) * time.Second),
				Window: 3 * time.Hour, Limit: 3, Reason: "upstream 403 three times within 3h"}})
	}

	// Disabled by the 403 rule, rate limited, blocked for a model.
	ruled := e.createAccount("ruled", g)
	mark(t, e.st, ruled, store.AccountMark{Kind: store.MarkRateLimited, Until: now.Add(time.Hour)})
	mark(t, e.st, ruled, store.AccountMark{Kind: store.MarkModelBlocked, Model: "gpt-4o", Until: now.Add(time.Hour)})
	for i := 0; i < 3; i++ {
		strike(ruled, i)
	}
	var a stateOnly
	e.mustCall(http.MethodGet, "/api/v1/admin/accounts/"+itoa(ruled), nil, http.StatusOK, &a)
	if a.Status != "disabled" || !strings.Contains(string(a.State), `"disabled_reason":"upstream 403 three times within 3h"`) ||
		!strings.Contains(string(a.State), `"pause_reason":"upstream 403"`) {
		t.Fatalf("after three 403s: status %q state %s", a.Status, a.State)
	}

	before := notified.n.Load()
	e.mustCall(http.MethodPost, "/api/v1/admin/accounts/"+itoa(ruled)+"/clear-state", nil, http.StatusOK, &a)
	if a.ID != ruled || a.Status != "active" || string(a.State) != emptyState {
		t.Fatalf("clear-state answered id %d status %q state %s, want %d active %s", a.ID, a.Status, a.State, ruled, emptyState)
	}
	if notified.n.Load() != before+1 {
		t.Fatal("clear-state did not tell the gateway to drop its account cache")
	}
	e.mustCall(http.MethodGet, "/api/v1/admin/accounts/"+itoa(ruled), nil, http.StatusOK, &a)
	if a.Status != "active" || string(a.State) != emptyState {
		t.Fatalf("GET after clear-state: status %q state %s", a.Status, a.State)
	}
	// The 403 count starts again.
	if res := strike(ruled, 10); res.Disabled {
		t.Fatal("the first 403 after clear-state disabled the account")
	}

	// An account an operator disabled stays disabled.
	manual := e.createAccount("manual", g)
	mark(t, e.st, manual, store.AccountMark{Kind: store.MarkOverloaded, Until: now.Add(time.Hour)})
	e.mustCall(http.MethodPatch, "/api/v1/admin/accounts/"+itoa(manual), map[string]any{"status": "disabled"}, http.StatusOK, nil)
	e.mustCall(http.MethodPost, "/api/v1/admin/accounts/"+itoa(manual)+"/clear-state", nil, http.StatusOK, &a)
	if a.Status != "disabled" || string(a.State) != emptyState {
		t.Fatalf("operator-disabled account after clear-state: status %q state %s", a.Status, a.State)
	}

	e.wantError(http.MethodPost, "/api/v1/admin/accounts/987654/clear-state", nil, http.StatusNotFound, "not_found_error", "account")
	e.wantError(http.MethodGet, "/api/v1/admin/accounts/"+itoa(manual)+"/clear-state", nil, http.StatusMethodNotAllowed, "invalid_request_error", "")
	status, _ := e.callWithToken(http.MethodPost, "/api/v1/admin/accounts/"+itoa(manual)+"/clear-state", nil, "")
	if status != http.StatusUnauthorized {
		t.Fatalf("clear-state without the admin token = %d, want 401", status)
	}
	e.mustCall(http.MethodDelete, "/api/v1/admin/accounts/"+itoa(manual), nil, http.StatusNoContent, nil)
	e.wantError(http.MethodPost, "/api/v1/admin/accounts/"+itoa(manual)+"/clear-state", nil, http.StatusNotFound, "not_found_error", "account")
}

// Every account write reaches the gateway's cache at once in this process.
func TestAccountWritesNotify(t *testing.T) {
	t.Parallel()
	e, notified := newStateEnv(t)
	id := e.createAccount("acc")
	path := "/api/v1/admin/accounts/" + itoa(id)
	before := notified.n.Load()
	e.mustCall(http.MethodPatch, path, map[string]any{"priority": 3}, http.StatusOK, nil)
	if notified.n.Load() != before+1 {
		t.Fatal("PATCH did not notify")
	}
	e.mustCall(http.MethodDelete, path, nil, http.StatusNoContent, nil)
	if notified.n.Load() != before+2 {
		t.Fatal("DELETE did not notify")
	}
}

// The state shows the account's open breakers per model, and clear-state closes them.
func TestAccountStateShowsBreakers(t *testing.T) {
	t.Parallel()
	e, _ := newStateEnv(t)
	ctx := context.Background()
	g := e.createGroup("g", "openai")
	id := e.createAccount("acc", g)
	path := "/api/v1/admin/accounts/" + itoa(id)
	b := breaker.New(e.rdb)
	now := time.Now().Truncate(time.Millisecond)
	for i := 0; i < 3; i++ {
		if _, err := b.Fail(ctx, id, "gpt-4o", "upstream_status 503", "g", breaker.SettingsOf(nil, nil, nil), now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Fail(ctx, id, "gpt-4o-mini", "transport", "g", breaker.SettingsOf(nil, nil, nil), now); err != nil {
		t.Fatal(err) // below the threshold: not shown
	}
	mark(t, e.st, id, store.AccountMark{Kind: store.MarkPaused, Until: now.Add(time.Hour), Reason: "insufficient_quota"})
	var a stateOnly
	e.mustCall(http.MethodGet, path, nil, http.StatusOK, &a)
	want := `"pause_reason":"insufficient_quota","disabled_reason":null,"model_blocks":{},` +
		`"breakers":[{"model":"gpt-4o","state":"open","reason":"upstream_status 503","failures":3,"next_probe_at":"` +
		now.Add(30*time.Second).UTC().Format(time.RFC3339Nano) + `"}]}`
	if !strings.HasSuffix(string(a.State), want) {
		t.Fatalf("state = %s\nwant it to end in %s", a.State, want)
	}
	var list listBody[stateOnly]
	e.mustCall(http.MethodGet, "/api/v1/admin/accounts", nil, http.StatusOK, &list)
	if len(list.Items) != 1 || string(list.Items[0].State) != string(a.State) {
		t.Fatalf("list items = %+v, want the same state", list.Items)
	}
	e.mustCall(http.MethodPost, path+"/clear-state", nil, http.StatusOK, &a)
	if string(a.State) != emptyState {
		t.Fatalf("clear-state answered state %s, want %s", a.State, emptyState)
	}
	if n := e.rdb.Exists(ctx, breaker.Key(id)).Val(); n != 0 {
		t.Fatal("clear-state left the breakers in Redis")
	}
}
