package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

const responsesBody = `{"model":"gpt-4o-mini","input":"hi"}`

func TestFailoverFrom429ToHealthyAccount(t *testing.T) {
	limited, healthy := unique("sk-429"), unique("sk-ok")
	programCredential(t, limited, obj{"status": 429, "headers": obj{"Retry-After": "30"}})
	programCredential(t, healthy, obj{"text": "served by the healthy account"})
	// The rate-limited account has the better priority, so it is tried first.
	tn, accts := newTenant(t,
		accountSpec{Credential: limited, Priority: 1},
		accountSpec{Credential: healthy, Priority: 2},
	)

	resp, err := sdkClient(tn.Key).Responses.New(ctxT(t), responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	})
	if err != nil {
		t.Fatalf("request failed instead of failing over: %v", err)
	}
	if resp.OutputText() != "served by the healthy account" {
		t.Fatalf("output = %q", resp.OutputText())
	}
	if n := len(upstreamRequestsFor(t, limited)); n != 1 {
		t.Errorf("rate-limited account got %d requests, want 1", n)
	}
	rec := usageFor(t, tn.KeyID, 1)[0]
	if num(rec, "attempts") != 2 || num(rec, "account_id") != accts[1] || num(rec, "status") != 200 {
		t.Errorf("usage record = %v", rec)
	}

	// The 429 put the account aside: the next request goes straight to the healthy one.
	if code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil); code != 200 {
		t.Fatalf("second request: %d %s", code, body)
	}
	if n := len(upstreamRequestsFor(t, limited)); n != 1 {
		t.Errorf("rate-limited account was tried again while cooling down (%d requests)", n)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestFailoverExhaustedMapping(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		wantStatus int
		wantType   string
		wantMsg    string
		tries      int // requests per account: a 500 or 503 is retried once on its account
	}{
		{"401", 401, 502, "upstream_error", "Upstream authentication failed, please contact administrator", 1},
		{"403", 403, 502, "upstream_error", "Upstream access forbidden, please contact administrator", 1},
		{"429", 429, 429, "rate_limit_error", "Upstream rate limit exceeded, please retry later", 1},
		{"529", 529, 503, "upstream_error", "Upstream service overloaded, please retry later", 1},
		{"500", 500, 502, "upstream_error", "Upstream service temporarily unavailable", 2},
		{"503", 503, 502, "upstream_error", "Upstream service temporarily unavailable", 2},
		{"402", 402, 502, "upstream_error", "Upstream request failed", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := unique("sk-bad"), unique("sk-bad")
			upstreamBody := `{"error":{"message":"secret upstream detail sk-upstream-credential"}}`
			switch tt.status { // only a 401/403 that blames the credential fails over
			case 401:
				upstreamBody = `{"error":{"message":"Incorrect API key provided: sk-upstream-credential","type":"invalid_request_error","code":"invalid_api_key"}}`
			case 403:
				upstreamBody = `{"type":"error","error":{"type":"permission_error","message":"This organization has been disabled."}}`
			}
			for _, c := range []string{a, b} {
				programCredential(t, c, obj{"status": tt.status, "body": upstreamBody})
			}
			tn, accts := newTenant(t, accountSpec{Credential: a, Priority: 1}, accountSpec{Credential: b, Priority: 2})
			code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
			want := fmt.Sprintf(`{"error":{"type":%q,"message":%q}}`, tt.wantType, tt.wantMsg)
			if code != tt.wantStatus || !jsonEqual(body, want) {
				t.Fatalf("got %d %s, want %d %s", code, body, tt.wantStatus, want)
			}
			if len(upstreamRequestsFor(t, a)) != tt.tries || len(upstreamRequestsFor(t, b)) != tt.tries {
				t.Errorf("each account should have been tried %d times", tt.tries)
			}
			recs := usageFor(t, tn.KeyID, 1)
			if num(recs[0], "attempts") != int64(2*tt.tries) || num(recs[0], "status") != int64(tt.wantStatus) {
				t.Errorf("usage record = %v", recs[0])
			}
			assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
		})
	}
}

func TestSwitchBudget(t *testing.T) {
	// Five failing accounts, at most 3 switches: exactly 4 accounts tried, each twice (a 500
	// is retried once on its account before the switch).
	var specs []accountSpec
	for i := 0; i < 5; i++ {
		c := unique("sk-500")
		programCredential(t, c, obj{"status": 500})
		specs = append(specs, accountSpec{Credential: c, Priority: i})
	}
	tn, accts := newTenant(t, specs...)
	code, _, _ := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	if code != 502 {
		t.Fatalf("status = %d, want 502", code)
	}
	tried := 0
	for _, s := range specs {
		tried += len(upstreamRequestsFor(t, s.Credential))
	}
	if tried != 8 {
		t.Errorf("upstream attempts = %d, want 8 (1 + 3 switches, each retried once)", tried)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestNonFailoverErrorPassesThrough(t *testing.T) {
	bad, other := unique("sk-400"), unique("sk-ok")
	upstreamBody := `{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":null}}`
	programCredential(t, bad, obj{"status": 400, "body": upstreamBody})
	tn, accts := newTenant(t, accountSpec{Credential: bad, Priority: 1}, accountSpec{Credential: other, Priority: 2})
	code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	if code != 400 || !jsonEqual(body, upstreamBody) {
		t.Fatalf("got %d %s, want the upstream's 400 as is", code, body)
	}
	if n := len(upstreamRequestsFor(t, other)); n != 0 {
		t.Errorf("a 400 must not fail over, but the other account got %d requests", n)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestModelMappingRewritesUpstreamModel(t *testing.T) {
	cred := unique("sk-map")
	tn, accts := newTenant(t, accountSpec{Credential: cred, ModelMapping: map[string]string{"gpt-4o*": "gpt-4o-2024-08-06"}})
	if code, _, body := post(t, "/v1/responses", tn.Key, `{"model":"gpt-4o-mini","input":"hi"}`, nil); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	reqs := upstreamRequestsFor(t, cred)
	if len(reqs) != 1 || !strings.Contains(reqs[0].Body, `"gpt-4o-2024-08-06"`) {
		t.Fatalf("upstream body = %+v", reqs)
	}
	// A model the account does not map is not served by it.
	code, _, body := post(t, "/v1/responses", tn.Key, `{"model":"o3","input":"hi"}`, nil)
	if code != 404 || !strings.Contains(body, "model_not_found") {
		t.Errorf("unmapped model: %d %s", code, body)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
