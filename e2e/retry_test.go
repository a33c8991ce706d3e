package e2e

import (
	"strings"
	"testing"
	"time"
)

// Same-account retries (docs/design.md, "Same-account retry") through the real Traefik: a
// failure that asks for a short wait is retried once on the same account, keeping its
// prompt cache, before any failover.

// sameAccountServed checks a request that one same-account retry served on account a: two
// attempts on a in its record, the first failed with firstStatus and retried there, and
// nothing sent to the other account.
func sameAccountServed(t *testing.T, tn tenant, accts []int64, firstStatus int64) {
	t.Helper()
	if n := len(upstreamRequestsFor(t, tn.Creds[0])); n != 2 {
		t.Errorf("account A got %d requests, want 2 (the failure and the retry)", n)
	}
	if n := len(upstreamRequestsFor(t, tn.Creds[1])); n != 0 {
		t.Errorf("account B got %d requests, want 0: no failover", n)
	}
	rec := usageFor(t, tn.KeyID, 1)[0]
	if num(rec, "attempts") != 2 || num(rec, "account_id") != accts[0] || num(rec, "status") != 200 || rec["error_class"] != "" {
		t.Fatalf("usage record = %v", rec)
	}
	requestID, _ := rec["request_id"].(string)
	attempts, _ := mustAdmin(t, "GET", "/usage/"+requestID, nil)["attempts"].([]any)
	if len(attempts) != 2 {
		t.Fatalf("attempts = %v, want 2", attempts)
	}
	first, second := attempts[0].(obj), attempts[1].(obj)
	if num(first, "account_id") != accts[0] || num(first, "status") != firstStatus || first["billed"] != false {
		t.Errorf("first attempt = %v", first)
	}
	if first["retried_same_account"] != true || second["retried_same_account"] != false {
		t.Errorf("retried_same_account = %v, %v; want true on the first attempt only",
			first["retried_same_account"], second["retried_same_account"])
	}
	if num(second, "account_id") != accts[0] || num(second, "status") != 200 || second["billed"] != true {
		t.Errorf("second attempt = %v", second)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestSameAccountRetryAfter429(t *testing.T) {
	a, b := unique("sk-ra1"), unique("sk-ok")
	programCredential(t, a, obj{"status": 429, "headers": obj{"Retry-After": "1"}, "times": 1})
	programCredential(t, b, obj{"text": "served by B"})
	tn, accts := newTenant(t, accountSpec{Credential: a, Priority: 1}, accountSpec{Credential: b, Priority: 2})

	began := time.Now()
	code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	took := time.Since(began)
	if code != 200 || strings.Contains(body, "served by B") {
		t.Fatalf("got %d %s, want 200 from account A", code, body)
	}
	if took < time.Second {
		t.Errorf("answered after %s: the Retry-After of 1s was not waited out", took)
	}
	sameAccountServed(t, tn, accts, 429)
}

func TestSameAccountRetryAfter500(t *testing.T) {
	a, b := unique("sk-500once"), unique("sk-ok")
	programCredential(t, a, obj{"status": 500, "times": 1})
	programCredential(t, b, obj{"text": "served by B"})
	tn, accts := newTenant(t, accountSpec{Credential: a, Priority: 1}, accountSpec{Credential: b, Priority: 2})

	code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	if code != 200 || strings.Contains(body, "served by B") {
		t.Fatalf("got %d %s, want 200 from account A", code, body)
	}
	sameAccountServed(t, tn, accts, 500)
}
