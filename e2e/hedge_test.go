package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Hedged first token (docs/design.md, "Hedged first token") through the real Traefik: with
// hedge_after_ms on the group, a stream whose first account has produced nothing by then is
// answered by a second account, without waiting for the first; the first is cancelled and
// recorded as lost, and both account slots come free.
func TestHedgedFirstTokenAnsweredBySecondAccount(t *testing.T) {
	t.Run("no headers yet", func(t *testing.T) {
		hedgedFirstToken(t, obj{"delay_ms": slowMs, "text": "from the slow account"})
	})
	// The slow account answers at once with its headers and the events that carry no output
	// (response.created, response.in_progress), and then nothing.
	t.Run("headers and empty events, then silence", func(t *testing.T) {
		hedgedFirstToken(t, obj{"stall_after_events": 2, "text": "from the slow account"})
	})
}

// slowMs is how long the slow account of TestHedgedFirstTokenAnsweredBySecondAccount holds
// its headers; the silent one holds its stream until it is cancelled.
const slowMs = 6000

func hedgedFirstToken(t *testing.T, slowScript obj) {
	slow, quick := unique("sk-slowft"), unique("sk-quick")
	programCredential(t, slow, slowScript)
	programCredential(t, quick, obj{"text": "from the quick account"})
	tn, accts := newTenant(t, accountSpec{Credential: slow, Priority: 1}, accountSpec{Credential: quick, Priority: 2})
	g := mustAdmin(t, "PATCH", fmt.Sprintf("/groups/%d", tn.GroupID), obj{"hedge_after_ms": 300})
	if num(g, "hedge_after_ms") != 300 {
		t.Fatalf("group after PATCH = %v", g)
	}
	time.Sleep(2500 * time.Millisecond) // the key cache (2 s) picks the group change up

	req, _ := http.NewRequest("POST", gw.GatewayURL+"/v1/responses",
		strings.NewReader(`{"model":"gpt-4o-mini","input":"hedge me","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+tn.Key)
	req.Header.Set("Content-Type", "application/json")
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		body.WriteString(sc.Text() + "\n")
	}
	resp.Body.Close()
	took := time.Since(began)
	if resp.StatusCode != 200 || !strings.Contains(body.String(), "from the quick account") ||
		!strings.Contains(body.String(), "event: response.completed") || strings.Contains(body.String(), "slow account") ||
		strings.Count(body.String(), "event: response.created") != 1 {
		t.Fatalf("got %d %s, want the quick account's stream", resp.StatusCode, body.String())
	}
	if took > slowMs*time.Millisecond/2 {
		t.Errorf("answered after %s: the slow account was waited for", took)
	}

	rec := usageFor(t, tn.KeyID, 1)[0]
	if num(rec, "account_id") != accts[1] || num(rec, "status") != 200 || num(rec, "attempts") != 2 {
		t.Fatalf("usage record = %v", rec)
	}
	requestID, _ := rec["request_id"].(string)
	attempts, _ := mustAdmin(t, "GET", "/usage/"+requestID, nil)["attempts"].([]any)
	if len(attempts) != 2 {
		t.Fatalf("attempts = %v, want 2", attempts)
	}
	lost, won := attempts[0].(obj), attempts[1].(obj)
	if num(lost, "account_id") != accts[0] || lost["error_class"] != "hedge_lost" || lost["billed"] != false {
		t.Errorf("lost attempt = %v", lost)
	}
	if lost["hedge_lost"] != true || won["hedge_lost"] != false {
		t.Errorf("hedge_lost = %v, %v; want true on the lost attempt only", lost["hedge_lost"], won["hedge_lost"])
	}
	if num(won, "account_id") != accts[1] || num(won, "status") != 200 || won["billed"] != true {
		t.Errorf("winning attempt = %v", won)
	}
	// The slow account saw the request (and its cancellation); both slots are free again.
	if n := len(upstreamRequestsFor(t, slow)); n != 1 {
		t.Errorf("the slow account got %d requests, want 1", n)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
