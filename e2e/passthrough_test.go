package e2e

import (
	"fmt"
	"testing"
)

// createRule adds an error passthrough rule and deletes it when the test ends. Rules are
// global, so every rule here requires a keyword no other test's upstream ever sends.
func createRule(t *testing.T, rule obj) int64 {
	t.Helper()
	r := mustAdmin(t, "POST", "/error-passthrough-rules", rule)
	ruleID := id(r)
	t.Cleanup(func() {
		if code, out := admin(t, "DELETE", fmt.Sprintf("/error-passthrough-rules/%d", ruleID), nil); code != 204 {
			t.Errorf("deleting rule %d: %d %v", ruleID, code, out)
		}
	})
	return ruleID
}

func TestPassthroughRuleRewritesExhaustedError(t *testing.T) {
	keyword := unique("pgquota")
	createRule(t, obj{
		"name": "e2e quota", "error_codes": []int{500}, "keywords": []string{keyword}, "match_mode": "all",
		"passthrough_code": false, "response_code": 503,
		"passthrough_body": false, "custom_message": "Upstream quota exhausted",
	})

	t.Run("matching rule", func(t *testing.T) {
		a, b := unique("sk-quota"), unique("sk-quota")
		for _, c := range []string{a, b} {
			programCredential(t, c, obj{"status": 500, "body": `{"error":{"message":"insufficient quota ` + keyword + `"}}`})
		}
		tn, accts := newTenant(t, accountSpec{Credential: a, Priority: 1}, accountSpec{Credential: b, Priority: 2})
		code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
		want := `{"error":{"type":"upstream_error","message":"Upstream quota exhausted"}}`
		if code != 503 || !jsonEqual(body, want) {
			t.Fatalf("got %d %s, want 503 %s", code, body, want)
		}
		// A 500 is retried once on its account before failing over.
		if len(upstreamRequestsFor(t, a)) != 2 || len(upstreamRequestsFor(t, b)) != 2 {
			t.Errorf("failover should have tried each account twice before the rule applied")
		}
		if rec := usageFor(t, tn.KeyID, 1)[0]; num(rec, "status") != 503 || num(rec, "attempts") != 4 {
			t.Errorf("usage record = %v", rec)
		}
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})

	t.Run("no matching rule: default mapping", func(t *testing.T) {
		a, b := unique("sk-plain500"), unique("sk-plain500")
		for _, c := range []string{a, b} {
			// The code matches, the keyword does not: match_mode all keeps the default.
			programCredential(t, c, obj{"status": 500, "body": `{"error":{"message":"insufficient quota"}}`})
		}
		tn, accts := newTenant(t, accountSpec{Credential: a, Priority: 1}, accountSpec{Credential: b, Priority: 2})
		code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
		want := `{"error":{"type":"upstream_error","message":"Upstream service temporarily unavailable"}}`
		if code != 502 || !jsonEqual(body, want) {
			t.Fatalf("got %d %s, want 502 %s", code, body, want)
		}
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})
}

func TestPassthroughRuleRewritesNonFailoverError(t *testing.T) {
	keyword := unique("pgpolicy")
	createRule(t, obj{"name": "e2e policy", "keywords": []string{keyword}, "platforms": []string{"openai"}})

	cred, other := unique("sk-400"), unique("sk-ok")
	programCredential(t, cred, obj{"status": 400, "body": `{"error":{"message":"Request blocked by policy ` + keyword +
		`","type":"invalid_request_error","code":"policy"}}`})
	programCredential(t, other, obj{"text": "must not be used"})
	tn, accts := newTenant(t, accountSpec{Credential: cred, Priority: 1}, accountSpec{Credential: other, Priority: 2})

	code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	want := `{"error":{"type":"upstream_error","message":"Request blocked by policy ` + keyword + `"}}`
	if code != 400 || !jsonEqual(body, want) {
		t.Fatalf("got %d %s, want 400 %s", code, body, want)
	}
	if n := len(upstreamRequestsFor(t, other)); n != 0 {
		t.Errorf("a 400 must not fail over, but the other account got %d requests", n)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
