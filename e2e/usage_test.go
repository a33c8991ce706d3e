package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// getKeyUsage calls GET /v1/usage through Traefik with the gateway key.
func getKeyUsage(t *testing.T, key string) (int, obj) {
	t.Helper()
	req, err := http.NewRequest("GET", gw.GatewayURL+"/v1/usage", nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := obj{}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("GET /v1/usage: status %d, body not JSON: %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func sub(o obj, path ...string) obj {
	for _, p := range path {
		o, _ = o[p].(obj)
	}
	return o
}

// A request that fails over from a 429 to a healthy account: the ledger shows both
// attempts, the user is billed for the answering one only, and the key reads its own
// usage and balance through Traefik.
func TestUsageLedgerOfAFailoverAndKeyUsage(t *testing.T) {
	limited, healthy := unique("sk-u429"), unique("sk-uok")
	programCredential(t, limited, obj{"status": 429, "headers": obj{"Retry-After": "30"}})
	programCredential(t, healthy, obj{"text": "answered", "usage": obj{
		"input_tokens": 1200, "cached_tokens": 200, "output_tokens": 400, "reasoning_tokens": 100}})
	tn, accts := newTenant(t,
		accountSpec{Credential: limited, Priority: 1},
		accountSpec{Credential: healthy, Priority: 2},
	)
	if code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil); code != 200 {
		t.Fatalf("request: %d %s", code, body)
	}
	rec := usageFor(t, tn.KeyID, 1)[0]
	// gpt-4o-mini: 1000 × 0.15 + 200 × 0.075 + 400 × 0.60 = 150 + 15 + 240 micro-dollars
	const cost = 405
	if num(rec, "attempts") != 2 || num(rec, "account_id") != accts[1] || num(rec, "reasoning_tokens") != 100 ||
		rec["cost_usd"] != 0.000405 || rec["priced"] != true {
		t.Errorf("usage record = %v", rec)
	}
	for _, f := range []string{"admission_ms", "upstream_ms", "first_token_ms", "duration_ms"} {
		if _, ok := rec[f].(float64); !ok {
			t.Errorf("usage record lacks latency %s: %v", f, rec)
		}
	}

	requestID, _ := rec["request_id"].(string)
	detail := mustAdmin(t, "GET", "/usage/"+requestID, nil)
	attempts, _ := detail["attempts"].([]any)
	if len(attempts) != 2 {
		t.Fatalf("attempts = %v, want 2", detail["attempts"])
	}
	first, second := attempts[0].(obj), attempts[1].(obj)
	if num(first, "attempt") != 1 || num(first, "account_id") != accts[0] || num(first, "status") != 429 ||
		first["billed"] != false || first["cost_usd"] != 0.0 || num(first, "input_tokens") != 0 {
		t.Errorf("first attempt = %v", first)
	}
	if num(second, "attempt") != 2 || num(second, "account_id") != accts[1] || num(second, "status") != 200 ||
		second["billed"] != true || second["cost_usd"] != 0.000405 || num(second, "output_tokens") != 400 {
		t.Errorf("second attempt = %v", second)
	}
	if code, out := admin(t, "GET", "/usage/req_does_not_exist", nil); code != http.StatusNotFound {
		t.Errorf("unknown request id: %d %v", code, out)
	}

	// The key's own view, through Traefik: one request, billed once, from a balance of 10 USD.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out := getKeyUsage(t, tn.Key)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/usage = %d %v", code, out)
		}
		total, bal := sub(out, "usage", "total"), sub(out, "balance")
		remaining := fmt.Sprint(bal["remaining_usd"])
		if num(total, "requests") == 1 && remaining == fmt.Sprint(10-float64(cost)/1e6) {
			if out["billing_mode"] != "balance" || num(sub(out, "usage", "today"), "requests") != 1 ||
				num(sub(out, "api_key"), "id") != tn.KeyID || total["cost_usd"] != 0.000405 {
				t.Errorf("GET /v1/usage = %v", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/usage never showed the billed request: %v", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out := getKeyUsage(t, "sk-pg-not-a-key")
	if e := sub(out, "error"); code != http.StatusUnauthorized || e["type"] != "authentication_error" ||
		e["message"] != "Invalid API key" {
		t.Errorf("bad key: %d %v, want 401 authentication_error", code, out)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
