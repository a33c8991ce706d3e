package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// sessionServedBy sends one request of the session and returns the text it was answered
// with: each account's credential is programmed with a text naming it.
func sessionServedBy(t *testing.T, key string, hdr map[string]string, body string) string {
	t.Helper()
	code, _, out := post(t, "/v1/responses", key, body, hdr)
	if code != 200 {
		t.Fatalf("session request: %d %s, want 200", code, out)
	}
	for _, who := range []string{"from-primary", "from-fallback", "from-free", "from-busy"} {
		if strings.Contains(out, who) {
			return who
		}
	}
	t.Fatalf("session request answered by nobody known: %s", out)
	return ""
}

// A flapping primary (docs/design.md, "Sticky sessions"): a session bound to the primary is
// served by the fallback while the primary is out, and comes back to the primary within a
// bounded time after it recovers — the failover's binding remembers the primary. The outage
// is a 429 with a Retry-After longer than any same-account retry, which takes the primary
// out for that long today and with per-(account, model) breakers alike.
func TestSessionComesHomeAfterFlappingPrimary(t *testing.T) {
	primary, fallback := unique("sk-primary"), unique("sk-fallback")
	programCredential(t, primary, obj{"text": "from-primary"})
	programCredential(t, fallback, obj{"text": "from-fallback"})
	tn, accts := newTenant(t, accountSpec{Credential: primary, Priority: 1}, accountSpec{Credential: fallback, Priority: 2})
	session := map[string]string{"session_id": unique("sess")}
	turn := func(i int) string {
		return `{"model":"gpt-4o-mini","input":"turn ` + strings.Repeat("x", i) + `"}`
	}
	if got := sessionServedBy(t, tn.Key, session, turn(1)); got != "from-primary" {
		t.Fatalf("first turn served %s, want from-primary", got)
	}
	const outage = 5 * time.Second
	programCredential(t, primary, obj{"status": 429, "headers": obj{"Retry-After": "5"}})
	failedAt := time.Now()
	for i := 2; i <= 3; i++ {
		if got := sessionServedBy(t, tn.Key, session, turn(i)); got != "from-fallback" {
			t.Fatalf("turn %d during the outage served %s, want from-fallback", i, got)
		}
	}
	primaryTries := len(upstreamRequestsFor(t, primary))
	programCredential(t, primary, obj{"text": "from-primary"}) // recovered; still resting until the Retry-After
	// Back home within the outage plus one probe interval (the breakers' default cool-down
	// is 30 s; a margin for slow machines on top).
	deadline := failedAt.Add(outage + 35*time.Second)
	i := 4
	for {
		got := sessionServedBy(t, tn.Key, session, turn(i))
		i++
		if got == "from-primary" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session was still on the fallback %s after the primary recovered", time.Since(failedAt))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if tries := len(upstreamRequestsFor(t, primary)); tries <= primaryTries {
		t.Fatalf("the primary got no request after recovering")
	}
	// And it stays home.
	for j := 0; j < 3; j++ {
		if got := sessionServedBy(t, tn.Key, session, turn(i+j)); got != "from-primary" {
			t.Fatalf("turn %d after coming home served %s, want from-primary", i+j, got)
		}
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// A content-seeded session (no session id) whose account is busy is served at once by a
// free account instead of waiting for its own (docs/design.md, "Sticky sessions"). Had it
// waited, its own account would have answered after the slow request.
func TestContentSessionOfBusyAccountTakesAFreeOne(t *testing.T) {
	busy, free := unique("sk-busy"), unique("sk-free")
	programCredential(t, busy, obj{"text": "from-busy"})
	programCredential(t, free, obj{"text": "from-free"})
	tn, accts := newTenant(t, accountSpec{Credential: busy, Priority: 1, Concurrency: 1},
		accountSpec{Credential: free, Priority: 2})
	conversation := `{"model":"gpt-4o-mini","input":"` + unique("content-seeded") + `"}`
	if got := sessionServedBy(t, tn.Key, nil, conversation); got != "from-busy" {
		t.Fatalf("first turn served %s, want from-busy (priority)", got)
	}
	programCredential(t, busy, obj{"text": "from-busy", "delay_ms": 3000, "times": 1})
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts) // the report releases the first turn's slot
	slow := make(chan int, 1)
	go func() {
		code, _, _ := post(t, "/v1/responses", tn.Key, freshBody(), nil)
		slow <- code
	}()
	waitActive(t, "accounts", "account_id", accts[0], 1)
	if got := sessionServedBy(t, tn.Key, nil, conversation); got != "from-free" {
		t.Fatalf("content session of a busy account served %s, want from-free without waiting", got)
	}
	if code := <-slow; code != 200 {
		t.Fatalf("slow request: %d", code)
	}
	// Its binding was kept: with its account free again, the conversation is back there.
	programCredential(t, busy, obj{"text": "from-busy"}) // the one slow answer was used up
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	if got := sessionServedBy(t, tn.Key, nil, conversation); got != "from-busy" {
		t.Fatalf("after the busy account was free again served %s, want from-busy", got)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// A flapping primary whose outage is a run of 500s (docs/design.md, "Health model", "Sticky
// sessions"): the failures open the primary's breaker for the model, the session is served
// by the fallback meanwhile without the primary being tried on every turn, and within one
// probe interval (the cool-down) after the primary recovers the same session is back on it:
// the half-open probe is the session's own request, and its success closes the breaker.
func TestSessionComesHomeAfterBreakerProbe(t *testing.T) {
	primary, fallback := unique("sk-primary"), unique("sk-fallback")
	programCredential(t, primary, obj{"text": "from-primary"})
	programCredential(t, fallback, obj{"text": "from-fallback"})
	tn, accts := newTenant(t, accountSpec{Credential: primary, Priority: 1}, accountSpec{Credential: fallback, Priority: 2})
	const cooldown = 4 * time.Second
	mustAdmin(t, "PATCH", fmt.Sprintf("/groups/%d", tn.GroupID), obj{"breaker_threshold": 2, "breaker_cooldown_ms": cooldown.Milliseconds()})
	session := map[string]string{"session_id": unique("sess")}
	turn := func(i int) string {
		return `{"model":"gpt-4o-mini","input":"turn ` + strings.Repeat("y", i) + `"}`
	}
	if got := sessionServedBy(t, tn.Key, session, turn(1)); got != "from-primary" {
		t.Fatalf("first turn served %s, want from-primary", got)
	}
	programCredential(t, primary, obj{"status": 500})
	// The 500 and its same-account retry are two failures: the breaker opens at once.
	if got := sessionServedBy(t, tn.Key, session, turn(2)); got != "from-fallback" {
		t.Fatalf("turn 2 during the outage served %s, want from-fallback", got)
	}
	// The retried attempt's failure is counted from the request's report, which settles
	// asynchronously: wait for the breaker to show open.
	for deadline := time.Now().Add(3 * time.Second); ; {
		st := mustAdmin(t, "GET", fmt.Sprintf("/accounts/%d", accts[0]), nil)["state"].(obj)
		if b := breakersOf(t, st); len(b) == 1 && b[0]["state"] == "open" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the primary's breaker did not open after two 500s: %v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tried := len(upstreamRequestsFor(t, primary))
	for i := 3; i <= 5; i++ {
		if got := sessionServedBy(t, tn.Key, session, turn(i)); got != "from-fallback" {
			t.Fatalf("turn %d during the outage served %s, want from-fallback", i, got)
		}
	}
	if n := len(upstreamRequestsFor(t, primary)); n != tried {
		t.Fatalf("the open breaker let %d more requests reach the primary during its cool-down", n-tried)
	}
	programCredential(t, primary, obj{"text": "from-primary"}) // recovered
	recovered := time.Now()
	i := 6
	for {
		got := sessionServedBy(t, tn.Key, session, turn(i))
		i++
		if got == "from-primary" {
			break
		}
		if time.Since(recovered) > cooldown+2*time.Second {
			t.Fatalf("the session was still on the fallback %s after the primary recovered (cool-down %s)", time.Since(recovered), cooldown)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The probe's report closes the breaker (until it has, the probe's account is half-open
	// with its one probe taken, and a turn sent meanwhile is served by the fallback); from
	// then on the session stays home.
	for deadline := time.Now().Add(3 * time.Second); ; {
		st := mustAdmin(t, "GET", fmt.Sprintf("/accounts/%d", accts[0]), nil)["state"].(obj)
		if len(breakersOf(t, st)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the primary's breaker is still shown after the probe succeeded: %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for j := 0; j < 3; j++ {
		if got := sessionServedBy(t, tn.Key, session, turn(i+j)); got != "from-primary" {
			t.Fatalf("turn %d after coming home served %s, want from-primary", i+j, got)
		}
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
