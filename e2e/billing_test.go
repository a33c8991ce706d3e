package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Billing end to end (docs/billing.md): real Traefik with the plugin, controlsvc on
// PostgreSQL and Redis, the fake upstream scripted per credential.

// usd reads a USD amount of the admin API as integer micro-dollars (six decimals at most,
// exact in a float64 at these magnitudes).
func usd(o obj, field string) int64 {
	f, _ := o[field].(float64)
	return int64(math.Round(f * 1e6))
}

// billingTenant is a user with a key on a group of its own with one account, set up through
// the admin API; group holds the group's billing fields.
func billingTenant(t *testing.T, balanceUSD float64, group obj) (tenant, int64, string) {
	t.Helper()
	cred := unique("sk-bill")
	u := mustAdmin(t, "POST", "/users", obj{"name": unique("user"), "concurrency": 5, "balance_usd": balanceUSD})
	g := obj{"name": unique("group"), "platform": "openai"}
	for k, v := range group {
		g[k] = v
	}
	gr := mustAdmin(t, "POST", "/groups", g)
	acc := mustAdmin(t, "POST", "/accounts", obj{
		"name": unique("acct"), "platform": "openai", "base_url": gw.FakeURL,
		"credential": obj{"api_key": cred}, "concurrency": 10, "group_ids": []int64{id(gr)},
	})
	// Every request of the tenant is answered with billingUsage: a credential script, since
	// the plugin forwards no X-Fake-Script header.
	var script obj
	if err := json.Unmarshal([]byte(billingUsage), &script); err != nil {
		t.Fatal(err)
	}
	programCredential(t, cred, script)
	k := mustAdmin(t, "POST", "/api-keys", obj{"user_id": id(u), "group_id": id(gr), "name": "e2e-billing"})
	key, _ := k["key"].(string)
	if key == "" {
		t.Fatalf("api key creation returned no key: %v", k)
	}
	return tenant{UserID: id(u), GroupID: id(gr), KeyID: id(k), Key: key}, id(acc), cred
}

// recordOf waits for the usage record of one request and returns it with its attempts.
func recordOf(t *testing.T, requestID string) obj {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, rec := admin(t, "GET", "/usage/"+requestID, nil)
		if code == 200 && rec["settled"] == true {
			return rec
		}
		// 404 before the first admission's explanation is written, 200 with settled false
		// while the request is in flight.
		if (code != 404 && code != 200) || time.Now().After(deadline) {
			t.Fatalf("usage record %s: %d %v", requestID, code, rec)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantClientError checks an error body in the OpenAI shape: type, message and, when code is
// not empty, code.
func wantClientError(t *testing.T, body, errType, message, code string) {
	t.Helper()
	var e struct {
		Error struct {
			Type    string  `json:"type"`
			Message string  `json:"message"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	gotCode := ""
	if e.Error.Code != nil {
		gotCode = *e.Error.Code
	}
	// A message ending in "..." is a prefix: the rest names amounts the caller does not pin.
	msgOK := e.Error.Message == message
	if prefix, ok := strings.CutSuffix(message, "..."); ok {
		msgOK = strings.HasPrefix(e.Error.Message, prefix)
	}
	if e.Error.Type != errType || !msgOK || gotCode != code {
		t.Fatalf("error = %s, want type %q message %q code %q", body, errType, message, code)
	}
}

const billingUsage = `{"usage":{"input_tokens":1200,"cached_tokens":200,"output_tokens":300}}`

// billedRequests are the requests of the balance and subscription scenarios.
var billedRequests = []struct {
	name, path, body string
}{
	{"responses", "/v1/responses", `{"model":"gpt-4o-mini","input":"hi","max_output_tokens":500}`},
	{"responses stream", "/v1/responses", `{"model":"gpt-4o-mini","input":"hi","stream":true}`},
	{"chat", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":500}`},
	{"chat stream", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
}

// sendBilled sends one request of a billingTenant (answered with billingUsage) and returns
// its request id.
func sendBilled(t *testing.T, key, path, body string) string {
	t.Helper()
	code, hdr, resp := post(t, path, key, body, nil)
	if code != 200 {
		t.Fatalf("request: %d %s", code, resp)
	}
	rid := hdr.Get("X-Poolgate-Request-Id")
	if rid == "" {
		t.Fatal("no X-Poolgate-Request-Id on the answer")
	}
	return rid
}

// gpt-4o-mini at list price: 1000 uncached input × 0.15 + 200 cached × 0.075 + 300 output ×
// 0.60 = 150 + 15 + 180 micro-dollars.
const billedCostMicros = 345

// Balance group: every request, streamed or not, lowers the balance by exactly its
// record's cost, and nothing stays reserved.
func TestBillingBalanceGroup(t *testing.T) {
	tn, acc, _ := billingTenant(t, 10, nil)
	for _, r := range billedRequests {
		t.Run(r.name, func(t *testing.T) {
			before := mustAdmin(t, "GET", fmt.Sprintf("/users/%d", tn.UserID), nil)
			rid := sendBilled(t, tn.Key, r.path, r.body)
			rec := recordOf(t, rid)
			cost := usd(rec, "cost_usd")
			if cost != billedCostMicros || rec["priced"] != true || rec["billing_mode"] != "balance" {
				t.Errorf("record = %v, want cost %d micros", rec, billedCostMicros)
			}
			after := mustAdmin(t, "GET", fmt.Sprintf("/users/%d", tn.UserID), nil)
			if got := usd(before, "balance_usd") - usd(after, "balance_usd"); got != cost {
				t.Errorf("balance dropped by %d micros, the record cost %d", got, cost)
			}
			if usd(after, "reserved_usd") != 0 {
				t.Errorf("still reserved after the request: %v", after)
			}
			if usd(rec, "reserved_usd") == 0 {
				t.Errorf("the record shows no reservation: %v", rec)
			}
			// The plugin's latencies reach the record.
			attempts, _ := rec["attempts"].([]any)
			if len(attempts) != 1 {
				t.Fatalf("attempts = %v", rec["attempts"])
			}
			if a := attempts[0].(obj); num(a, "latency_ms") > num(rec, "duration_ms") || num(rec, "upstream_ms") > num(rec, "duration_ms") {
				t.Errorf("latencies: record %v", rec)
			}
			assertNoSlotsHeld(t, []int64{tn.UserID}, []int64{acc})
		})
	}
}

// Subscription group: the request is charged to the subscription's windows, not the
// balance (which is 0).
func TestBillingSubscriptionGroup(t *testing.T) {
	tn, acc, _ := billingTenant(t, 0, obj{"billing_mode": "subscription", "daily_limit_usd": 1, "weekly_limit_usd": 5})
	s := mustAdmin(t, "POST", "/subscriptions", obj{"user_id": tn.UserID, "group_id": tn.GroupID, "duration_days": 30})
	path := fmt.Sprintf("/subscriptions/%d", id(s))
	for _, r := range billedRequests {
		t.Run(r.name, func(t *testing.T) {
			before := mustAdmin(t, "GET", path, nil)
			rid := sendBilled(t, tn.Key, r.path, r.body)
			rec := recordOf(t, rid)
			cost := usd(rec, "cost_usd")
			if cost != billedCostMicros || rec["billing_mode"] != "subscription" || num(rec, "subscription_id") != id(s) {
				t.Errorf("record = %v", rec)
			}
			after := mustAdmin(t, "GET", path, nil)
			for _, w := range []string{"daily", "weekly", "monthly"} {
				b, a := before["windows"].(obj)[w].(obj), after["windows"].(obj)[w].(obj)
				if got := usd(a, "used_usd") - usd(b, "used_usd"); got != cost {
					t.Errorf("%s window used rose by %d micros, the record cost %d", w, got, cost)
				}
			}
			if usd(after, "reserved_usd") != 0 {
				t.Errorf("still reserved after the request: %v", after)
			}
			u := mustAdmin(t, "GET", fmt.Sprintf("/users/%d", tn.UserID), nil)
			if usd(u, "balance_usd") != 0 {
				t.Errorf("a subscription request changed the balance: %v", u)
			}
			assertNoSlotsHeld(t, []int64{tn.UserID}, []int64{acc})
		})
	}
}

// eventually retries a request until it gets want (admin changes reach admission through
// the 2 s key cache) and returns the last answer.
func eventually(t *testing.T, want int, send func() (int, string, string)) (string, string) {
	t.Helper()
	deadline := time.Now().Add(6 * time.Second)
	for {
		code, retryAfter, body := send()
		if code == want {
			return retryAfter, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d (%s), want %d", code, body, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestBillingRefusals(t *testing.T) {
	const req = `{"model":"gpt-4o-mini","input":"hi"}`
	send := func(key, body string) func() (int, string, string) {
		return func() (int, string, string) {
			code, hdr, resp := post(t, "/v1/responses", key, body, nil)
			return code, hdr.Get("Retry-After"), resp
		}
	}

	t.Run("insufficient balance", func(t *testing.T) {
		// 0.0001 USD: below the input estimate of a 4000-byte request (docs/billing.md,
		// "Billing modes and eligibility": a request is refused only when its input is not
		// covered), with OpenAI's insufficient_quota code.
		tn, acc, _ := billingTenant(t, 0.0001, nil)
		big := `{"model":"gpt-4o-mini","input":"` + strings.Repeat("x", 4000) + `"}`
		_, body := eventually(t, 403, send(tn.Key, big))
		wantClientError(t, body, "billing_error",
			"Insufficient balance: $0.00 available; this request may cost up to $0.01 (max_tokens 4096 on gpt-4o-mini)", "insufficient_quota")
		assertNoSlotsHeld(t, []int64{tn.UserID}, []int64{acc})
	})

	t.Run("unpriced model", func(t *testing.T) {
		// The group names the model (a model no name answers for is a 404 model_not_found
		// before pricing is looked at), but no price does.
		tn, acc, _ := billingTenant(t, 10, obj{"model_mapping": obj{"e2e-unpriced-model": "e2e-unpriced-model"}})
		_, body := eventually(t, 400, send(tn.Key, `{"model":"e2e-unpriced-model","input":"hi"}`))
		wantClientError(t, body, "invalid_request_error", "No price configured for model e2e-unpriced-model", "")
		assertNoSlotsHeld(t, []int64{tn.UserID}, []int64{acc})
	})

	t.Run("subscription window exhausted", func(t *testing.T) {
		tn, acc, _ := billingTenant(t, 0, obj{"billing_mode": "subscription", "weekly_limit_usd": 0.000001})
		mustAdmin(t, "POST", "/subscriptions", obj{"user_id": tn.UserID, "group_id": tn.GroupID, "duration_days": 30})
		retryAfter, body := eventually(t, 429, send(tn.Key, req))
		wantClientError(t, body, "rate_limit_exceeded", "Weekly usage limit exceeded", "rate_limit_exceeded")
		// The weekly window of a subscription that starts now ends in 7 days.
		if secs, err := strconv.Atoi(retryAfter); err != nil || secs > 7*24*3600 || secs < 7*24*3600-120 {
			t.Errorf("Retry-After %q, want about a week", retryAfter)
		}
		assertNoSlotsHeld(t, []int64{tn.UserID}, []int64{acc})
	})

	t.Run("key quota exhausted", func(t *testing.T) {
		tn, acc, _ := billingTenant(t, 10, nil)
		mustAdmin(t, "PATCH", fmt.Sprintf("/api-keys/%d", tn.KeyID), obj{"quota_usd": 0.000001})
		_, body := eventually(t, 429, send(tn.Key, req))
		wantClientError(t, body, "insufficient_quota", "API key quota exhausted: $0.00 left; this request may cost up to $0.01 (max_tokens 4096 on gpt-4o-mini)", "insufficient_quota")
		assertNoSlotsHeld(t, []int64{tn.UserID}, []int64{acc})
	})

	t.Run("expired key", func(t *testing.T) {
		tn, acc, _ := billingTenant(t, 10, nil)
		past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
		mustAdmin(t, "PATCH", fmt.Sprintf("/api-keys/%d", tn.KeyID), obj{"expires_at": past})
		_, body := eventually(t, 403, send(tn.Key, req))
		wantClientError(t, body, "permission_error", "API key has expired", "permission_error")
		assertNoSlotsHeld(t, []int64{tn.UserID}, []int64{acc})
	})

	t.Run("insufficient balance, Anthropic shape", func(t *testing.T) {
		cred := unique("sk-bill-anth")
		u := mustAdmin(t, "POST", "/users", obj{"name": unique("user"), "concurrency": 5, "balance_usd": 0.0001})
		g := mustAdmin(t, "POST", "/groups", obj{"name": unique("group"), "platform": "anthropic"})
		acc := mustAdmin(t, "POST", "/accounts", obj{"name": unique("acct"), "platform": "anthropic", "base_url": gw.FakeURL,
			"credential": obj{"api_key": cred}, "concurrency": 10, "group_ids": []int64{id(g)}})
		k := mustAdmin(t, "POST", "/api-keys", obj{"user_id": id(u), "group_id": id(g), "name": "e2e"})
		key, _ := k["key"].(string)
		body := `{"model":"claude-sonnet-4","max_tokens":20000,"messages":[{"role":"user","content":"` + strings.Repeat("x", 4000) + `"}]}`
		code, _, resp := post(t, "/v1/messages", key, body, nil)
		// Anthropic's 402 billing_error (docs/billing.md, "Billing modes and eligibility").
		if code != 402 || !strings.Contains(resp, `"type":"error"`) || !strings.Contains(resp, `"billing_error"`) ||
			!strings.Contains(resp, "Insufficient balance: $0.00 available; this request may cost up to $0.31 (max_tokens 20000 on claude-sonnet-4)") {
			t.Fatalf("status %d: %s", code, resp)
		}
		assertNoSlotsHeld(t, []int64{id(u)}, []int64{id(acc)})
	})
}
