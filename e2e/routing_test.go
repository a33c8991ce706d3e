package e2e

import (
	"testing"
)

// A request whose first account answers 500 and is served by the second: its record lists
// both attempts with why each ended, and its routing explanation shows the failover
// admission skipping the first account as excluded (docs/design.md, "Routing explanations").
func TestRoutingExplanationOfAFailover(t *testing.T) {
	broken, healthy := unique("sk-route-500"), unique("sk-route-ok")
	programCredential(t, broken, obj{"status": 500, "body": `{"error":{"message":"boom"}}`})
	programCredential(t, healthy, obj{"text": "served by the second account"})
	tn, accts := newTenant(t, accountSpec{Credential: broken, Priority: 1}, accountSpec{Credential: healthy, Priority: 2})

	code, hdr, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	if code != 200 {
		t.Fatalf("request = %d %s, want 200 from the second account", code, body)
	}
	requestID := hdr.Get("X-Poolgate-Request-Id")
	if requestID == "" {
		t.Fatalf("no X-Poolgate-Request-Id in %v", hdr)
	}
	rec := recordOf(t, requestID)
	if num(rec, "account_id") != accts[1] || num(rec, "status") != 200 {
		t.Errorf("record = %v", rec)
	}

	attempts, _ := rec["attempts"].([]any)
	if len(attempts) < 2 {
		t.Fatalf("attempts = %v, want the failed one and the answering one", rec["attempts"])
	}
	// Every attempt but the last failed on the first account (a same-account retry, when
	// the plugin makes one, says so); the last is the second account's 200.
	for i, a := range attempts {
		at := a.(obj)
		last := i == len(attempts)-1
		wantAcct, wantStatus, wantClass := accts[0], int64(500), "upstream_status"
		if last {
			wantAcct, wantStatus, wantClass = accts[1], 200, ""
		}
		if num(at, "account_id") != wantAcct || num(at, "status") != wantStatus || at["error_class"] != wantClass ||
			at["hedge_lost"] != false || at["retried_same_account"] != (!last && i < len(attempts)-2) {
			t.Errorf("attempt %d = %v, want account %d status %d error_class %q", i+1, at, wantAcct, wantStatus, wantClass)
		}
		if _, ok := at["breaker_open"].(bool); !ok {
			t.Errorf("attempt %d has no breaker_open: %v", i+1, at)
		}
	}

	// The last attempt's admission, a failover, saw the first account excluded and chose
	// the second; the first admission chose the first.
	lastAt := attempts[len(attempts)-1].(obj)
	if got := reasonFor(lastAt["candidates"], accts[0]); got != "excluded" {
		t.Errorf("failover candidates = %v, want account %d excluded", lastAt["candidates"], accts[0])
	}
	if got := reasonFor(lastAt["candidates"], accts[1]); got != "chosen" {
		t.Errorf("failover candidates = %v, want account %d chosen", lastAt["candidates"], accts[1])
	}
	if got := reasonFor(attempts[0].(obj)["candidates"], accts[0]); got != "chosen" {
		t.Errorf("first admission's candidates = %v, want account %d chosen", attempts[0].(obj)["candidates"], accts[0])
	}
	routing, _ := rec["routing"].([]any)
	if len(routing) != 2 {
		t.Fatalf("routing = %v, want two admissions", rec["routing"])
	}
	second := routing[1].(obj)
	failed, _ := second["failed"].(obj)
	if second["kind"] != "failover" || num(second, "account_id") != accts[1] || failed == nil ||
		num(failed, "account_id") != accts[0] || num(failed, "status") != 500 || failed["error_class"] != "upstream_status" {
		t.Errorf("failover admission = %v", second)
	}

	code, out := admin(t, "GET", "/usage/req_never_admitted_"+unique("x"), nil)
	if e, _ := out["error"].(obj); code != 404 || e["type"] != "not_found_error" {
		t.Errorf("unknown request id = %d %v, want 404 not_found_error", code, out)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// reasonFor is the reason given for account in a candidates list, "" when absent.
func reasonFor(candidates any, account int64) string {
	list, _ := candidates.([]any)
	for _, c := range list {
		o := c.(obj)
		if num(o, "account_id") == account {
			s, _ := o["reason"].(string)
			return s
		}
	}
	return ""
}
