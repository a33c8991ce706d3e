package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Billing that agents can live with (docs/billing.md, "Reserve, then settle"), through the
// real Traefik: a reservation is min(estimate, available), so a user with $3 left is served
// a request whose max_tokens alone could cost more, and charged its real usage; a user
// whose balance cannot cover the input gets Anthropic's 402 billing_error with a message
// that says what the request may cost.
func TestAgentBilling(t *testing.T) {
	t.Run("$3 serves an Opus request of max_tokens 64000", func(t *testing.T) {
		cred := unique("sk-agent-bill")
		// The answer waits 1.5 s, long enough to see the reservation while it is held.
		programCredential(t, cred, obj{"text": anthropicText, "usage": anthropicUsage, "delay_ms": 1500})
		tn, accts := anthropicTenant(t, nil, accountSpec{Credential: cred})
		mustAdmin(t, "PATCH", fmt.Sprintf("/users/%d", tn.UserID), obj{"balance_usd": 3})
		before := mustAdmin(t, "GET", fmt.Sprintf("/users/%d", tn.UserID), nil)
		if usd(before, "balance_usd") != 3_000_000 {
			t.Fatalf("balance %v, want 3", before["balance_usd"])
		}
		// claude-opus-4-1 is $15/$75 per million tokens: 64000 output tokens alone are $4.80.
		body := `{"model":"claude-opus-4-1","max_tokens":64000,"messages":[{"role":"user","content":"hi"}]}`
		type answer struct {
			code int
			resp string
		}
		done := make(chan answer, 1)
		go func() {
			code, _, resp := post(t, "/v1/messages", tn.Key, body, nil)
			done <- answer{code, resp}
		}()
		held := int64(0)
		deadline := time.Now().Add(1200 * time.Millisecond)
		for held == 0 && time.Now().Before(deadline) {
			held = usd(mustAdmin(t, "GET", fmt.Sprintf("/users/%d", tn.UserID), nil), "reserved_usd")
			time.Sleep(50 * time.Millisecond)
		}
		if held != 3_000_000 {
			t.Errorf("reserved %d micros while in flight, want the whole 3 USD available (the estimate is more)", held)
		}
		a := <-done
		if a.code != 200 || !strings.Contains(a.resp, anthropicText) {
			t.Fatalf("status %d: %s", a.code, a.resp)
		}
		rec := usageFor(t, tn.KeyID, 1)[0]
		// 13 input × 15 + 100 cache reads × 1.50 + 7 cache writes × 18.75 + 30 output × 75,
		// per million tokens: 195 + 150 + 131 + 2250 micro-dollars.
		const wantCost = 195 + 150 + 131 + 2250
		if cost := usd(rec, "cost_usd"); cost != wantCost {
			t.Errorf("record cost %d micros, want %d (record %v)", cost, wantCost, rec)
		}
		waitSettled(t, tn.UserID, 3_000_000-wantCost)
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})

	t.Run("almost nothing left gets 402 billing_error on /v1/messages", func(t *testing.T) {
		cred := unique("sk-agent-poor")
		programCredential(t, cred, obj{"text": anthropicText, "usage": anthropicUsage})
		tn, accts := anthropicTenant(t, nil, accountSpec{Credential: cred})
		mustAdmin(t, "PATCH", fmt.Sprintf("/users/%d", tn.UserID), obj{"balance_usd": 0.0001})
		// 4000 bytes of input are about 2000 tokens: $0.01 at Opus 4.8's $5, more than is left.
		body := `{"model":"claude-opus-4-8","max_tokens":64000,"messages":[{"role":"user","content":"` +
			strings.Repeat("x", 4000) + `"}]}`
		code, resp := eventuallyStatus(t, 402, func() (int, string) {
			c, _, r := post(t, "/v1/messages", tn.Key, body, nil)
			return c, r
		})
		const prefix = "Insufficient balance: $0.00 available; this request may cost up to $"
		const suffix = " (max_tokens 64000 on claude-opus-4-8)"
		if code != 402 || !strings.Contains(resp, `"type":"error"`) || !strings.Contains(resp, `"type":"billing_error"`) ||
			!strings.Contains(resp, prefix) || !strings.Contains(resp, suffix+`"`) {
			t.Fatalf("status %d: %s", code, resp)
		}
		if n := len(anthropicRequestsFor(t, cred)); n != 0 {
			t.Errorf("the upstream got %d requests, want none", n)
		}
		assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
	})
}

// eventuallyStatus repeats send until it answers want (the key cache holds an old balance
// up to its TTL) or 5 s pass.
func eventuallyStatus(t *testing.T, want int, send func() (int, string)) (int, string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, resp := send()
		if code == want || time.Now().After(deadline) {
			return code, resp
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitSettled waits until the user's reservation is settled to the balance want.
func waitSettled(t *testing.T, userID, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		u := mustAdmin(t, "GET", fmt.Sprintf("/users/%d", userID), nil)
		if usd(u, "reserved_usd") == 0 && usd(u, "balance_usd") == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("user %v, want balance %d micros and nothing reserved", u, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
