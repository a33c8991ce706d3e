package e2e

// Account health (docs/design.md, "Account health") end to end: an upstream failure fails
// the request over to a healthy account, and the failing account's state, as the admin API
// shows it, records what happened.

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// accountHealth reads the state of an account from the admin API.
func accountHealth(t *testing.T, accountID int64) obj {
	t.Helper()
	a := mustAdmin(t, "GET", fmt.Sprintf("/accounts/%d", accountID), nil)
	st, ok := a["state"].(obj)
	if !ok {
		t.Fatalf("account %d has no state object: %v", accountID, a)
	}
	return st
}

// wantUntil checks that the state's deadline field lies about want from now.
func wantUntil(t *testing.T, st obj, field string, want time.Duration) {
	t.Helper()
	raw, _ := st[field].(string)
	until, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		t.Fatalf("state.%s = %v, want an RFC 3339 time about %v from now (state %v)", field, st[field], want, st)
	}
	// Wide bounds: the mark was set a moment ago, and the machine may be busy.
	if left := time.Until(until); left < want-15*time.Second || left > want+2*time.Second {
		t.Fatalf("state.%s = %s, %v from now; want about %v", field, raw, left.Round(time.Second), want)
	}
}

// wantNull checks that the state's fields are null (nothing in force).
func wantNull(t *testing.T, st obj, fields ...string) {
	t.Helper()
	for _, f := range fields {
		if v, ok := st[f]; !ok || v != nil {
			t.Fatalf("state.%s = %v, want null (state %v)", f, v, st)
		}
	}
}

var healthDeadlines = []string{"rate_limited_until", "overloaded_until", "paused_until", "pause_reason", "disabled_reason"}

// closedPortURL is the URL of a local port nobody listens on: connecting is refused.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// addAccount adds an openai account at baseURL to the tenant's group.
func addAccount(t *testing.T, tn tenant, baseURL, credential string, priority int) int64 {
	t.Helper()
	return id(mustAdmin(t, "POST", "/accounts", obj{
		"name": unique("acct"), "platform": "openai", "base_url": baseURL,
		"credential": obj{"api_key": credential}, "priority": priority, "concurrency": 10,
		"group_ids": []int64{tn.GroupID},
	}))
}

// freshBody is a request body of its own session: the session seed includes the first user
// message, and a sticky binding from an earlier request would decide the account.
func freshBody() string {
	return fmt.Sprintf(`{"model":"gpt-4o-mini","input":%q}`, unique("hi"))
}

// wantServedBy sends a request (a new session) and checks that it succeeded from the given credential's
// account, and that the other credentials got no new request.
func wantServedBy(t *testing.T, tn tenant, served string, others ...string) {
	t.Helper()
	before := map[string]int{served: len(upstreamRequestsFor(t, served))}
	for _, o := range others {
		before[o] = len(upstreamRequestsFor(t, o))
	}
	if code, _, body := post(t, "/v1/responses", tn.Key, freshBody(), nil); code != 200 {
		t.Fatalf("request: %d %s, want 200", code, body)
	}
	if n := len(upstreamRequestsFor(t, served)); n != before[served]+1 {
		t.Fatalf("the account of %s got %d new requests, want 1", served, n-before[served])
	}
	for _, o := range others {
		if n := len(upstreamRequestsFor(t, o)); n != before[o] {
			t.Fatalf("the account of %s got %d new requests, want none", o, n-before[o])
		}
	}
}

func TestHealthFailover429HonoursResetHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers func() obj
		want    time.Duration
	}{
		{name: "Retry-After seconds", headers: func() obj { return obj{"Retry-After": "120"} }, want: 120 * time.Second},
		{name: "OpenAI reset durations: the latest", headers: func() obj {
			return obj{"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "1m30s"}
		}, want: 90 * time.Second},
		{name: "Anthropic RFC 3339 resets: the latest", headers: func() obj {
			return obj{
				"anthropic-ratelimit-requests-reset": time.Now().Add(40 * time.Second).UTC().Format(time.RFC3339),
				"anthropic-ratelimit-tokens-reset":   time.Now().Add(150 * time.Second).UTC().Format(time.RFC3339),
			}
		}, want: 150 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limited, healthy := unique("sk-429"), unique("sk-ok")
			programCredential(t, limited, obj{"status": 429, "headers": tt.headers()})
			programCredential(t, healthy, obj{"text": "served by the healthy account"})
			tn, accts := newTenant(t, accountSpec{Credential: limited, Priority: 1}, accountSpec{Credential: healthy, Priority: 2})

			code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
			if code != 200 || !strings.Contains(body, "served by the healthy account") {
				t.Fatalf("got %d %s, want 200 from the healthy account", code, body)
			}
			st := accountHealth(t, accts[0])
			wantUntil(t, st, "rate_limited_until", tt.want)
			wantNull(t, st, "overloaded_until", "paused_until", "pause_reason", "disabled_reason")
			wantNull(t, accountHealth(t, accts[1]), healthDeadlines...)
			// Rate-limited, the account is skipped: the next request goes straight to the other.
			wantServedBy(t, tn, healthy, limited)
			assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
		})
	}
}

// The last attempt's 429 is settled from the report: its Retry-After counts as well.
func TestHealthExhausted429MarksEveryAccount(t *testing.T) {
	a, b := unique("sk-429"), unique("sk-429")
	for _, c := range []string{a, b} {
		programCredential(t, c, obj{"status": 429, "headers": obj{"Retry-After": "300"}})
	}
	tn, accts := newTenant(t, accountSpec{Credential: a, Priority: 1}, accountSpec{Credential: b, Priority: 2})
	if code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil); code != 429 {
		t.Fatalf("got %d %s, want 429", code, body)
	}
	usageFor(t, tn.KeyID, 1) // the report is stored, so the last account is marked
	for _, acc := range accts {
		wantUntil(t, accountHealth(t, acc), "rate_limited_until", 300*time.Second)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestHealthFailover500LeavesNoMark(t *testing.T) {
	broken, healthy := unique("sk-500"), unique("sk-ok")
	programCredential(t, broken, obj{"status": 500})
	programCredential(t, healthy, obj{"text": "served by the healthy account"})
	tn, accts := newTenant(t, accountSpec{Credential: broken, Priority: 1}, accountSpec{Credential: healthy, Priority: 2})
	code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	if code != 200 || !strings.Contains(body, "served by the healthy account") {
		t.Fatalf("got %d %s, want 200 from the healthy account", code, body)
	}
	wantNull(t, accountHealth(t, accts[0]), healthDeadlines...)
	// A 500 only excluded the account for that request: the next one (of another session)
	// tries it first again.
	if code, _, _ := post(t, "/v1/responses", tn.Key, freshBody(), nil); code != 200 {
		t.Fatalf("second request: %d", code)
	}
	// Each request retried the 500 once on the account before failing over.
	if n := len(upstreamRequestsFor(t, broken)); n != 4 {
		t.Fatalf("the 500 account got %d requests, want 4 (it is not marked)", n)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// A 529 no longer pauses the account (docs/design.md, "Health model"): it counts towards
// the breaker of (account, model), so one 529 only excludes the account for that request.
func TestHealthFailover529OnlyExcludesForTheRequest(t *testing.T) {
	overloaded, healthy := unique("sk-529"), unique("sk-ok")
	programCredential(t, overloaded, obj{"status": 529, "times": 1})
	programCredential(t, healthy, obj{"text": "served by the healthy account"})
	tn, accts := newTenant(t, accountSpec{Credential: overloaded, Priority: 1}, accountSpec{Credential: healthy, Priority: 2})
	code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	if code != 200 || !strings.Contains(body, "served by the healthy account") {
		t.Fatalf("got %d %s, want 200 from the healthy account", code, body)
	}
	wantNull(t, accountHealth(t, accts[0]), healthDeadlines...)
	wantServedBy(t, tn, overloaded, healthy)
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestHealthConnectionRefusedPausesAccount(t *testing.T) {
	healthy := unique("sk-ok")
	programCredential(t, healthy, obj{"text": "served by the healthy account"})
	tn, accts := newTenant(t, accountSpec{Credential: healthy, Priority: 2})
	dead := addAccount(t, tn, closedPortURL(t), unique("sk-dead"), 1)
	accts = append(accts, dead)

	code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	if code != 200 || !strings.Contains(body, "served by the healthy account") {
		t.Fatalf("got %d %s, want 200 from the healthy account", code, body)
	}
	rec := usageFor(t, tn.KeyID, 1)[0]
	if num(rec, "attempts") != 2 || num(rec, "account_id") != accts[0] {
		t.Fatalf("usage record = %v, want 2 attempts ending on account %d", rec, accts[0])
	}
	// A dial failure is the account's: a short back-off (5 s for the first), not 10 min.
	st := accountHealth(t, dead)
	wantUntil(t, st, "paused_until", 5*time.Second)
	if st["pause_reason"] != "upstream unreachable" {
		t.Fatalf("pause_reason = %v, want \"upstream unreachable\"", st["pause_reason"])
	}
	wantNull(t, st, "rate_limited_until", "overloaded_until", "disabled_reason")
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestHealthModelNotFoundBlocksTheModel(t *testing.T) {
	missing, healthy := unique("sk-404"), unique("sk-ok")
	programCredential(t, missing, obj{"status": 404,
		"body": `{"error":{"message":"The model ` + "`gpt-4o-mini`" + ` does not exist or you do not have access to it.","type":"invalid_request_error","code":"model_not_found"}}`})
	programCredential(t, healthy, obj{"text": "served by the healthy account"})
	tn, accts := newTenant(t, accountSpec{Credential: missing, Priority: 1}, accountSpec{Credential: healthy, Priority: 2})
	code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	if code != 200 || !strings.Contains(body, "served by the healthy account") {
		t.Fatalf("got %d %s, want 200 from the healthy account", code, body)
	}
	st := accountHealth(t, accts[0])
	blocks, _ := st["model_blocks"].(obj)
	if len(blocks) != 1 {
		t.Fatalf("model_blocks = %v, want one block for gpt-4o-mini", st["model_blocks"])
	}
	wantUntil(t, blocks, "gpt-4o-mini", 30*time.Minute)
	wantNull(t, st, healthDeadlines...)
	wantServedBy(t, tn, healthy, missing)
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestHealthClearStateThroughAdminAPI(t *testing.T) {
	limited, other := unique("sk-429"), unique("sk-ok")
	// One 429, then the account answers normally again.
	programCredential(t, limited, obj{"status": 429, "times": 1, "headers": obj{"Retry-After": "600"}})
	programCredential(t, other, obj{"text": "served by the other account"})
	tn, accts := newTenant(t, accountSpec{Credential: limited, Priority: 1}, accountSpec{Credential: other, Priority: 2})
	if code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil); code != 200 {
		t.Fatalf("got %d %s, want 200 after failover", code, body)
	}
	wantUntil(t, accountHealth(t, accts[0]), "rate_limited_until", 10*time.Minute)
	wantServedBy(t, tn, other, limited)

	cleared := mustAdmin(t, "POST", fmt.Sprintf("/accounts/%d/clear-state", accts[0]), nil)
	st, _ := cleared["state"].(obj)
	if id(cleared) != accts[0] || cleared["status"] != "active" || st == nil {
		t.Fatalf("clear-state answered %v, want the active account", cleared)
	}
	wantNull(t, st, healthDeadlines...)
	if blocks, _ := st["model_blocks"].(obj); blocks == nil || len(blocks) != 0 {
		t.Fatalf("model_blocks = %v, want {}", st["model_blocks"])
	}
	wantNull(t, accountHealth(t, accts[0]), healthDeadlines...)
	// The cleared account, preferred by priority, serves the very next request.
	wantServedBy(t, tn, limited, other)

	if code, out := admin(t, "POST", "/accounts/987654321/clear-state", nil); code != 404 {
		t.Fatalf("clear-state of an unknown account: %d %v, want 404", code, out)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
