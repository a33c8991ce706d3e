package e2e

// The health model (docs/design.md, "Health model") end to end: a failure after the request
// was sent excludes the account for that request and counts towards the breaker of
// (account, model); an account out of credit is paused with that reason; the breaker opens
// at its threshold for its model only and heals by one probe after the cool-down.

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gatewayMetric reads one unlabelled counter from controlsvc's metrics listener.
func gatewayMetric(t *testing.T, name string) int64 {
	t.Helper()
	resp, err := http.Get(gw.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// modelBody is a non-stream Responses body for model, of a session of its own.
func modelBody(model string) string {
	return fmt.Sprintf(`{"model":%q,"input":%q}`, model, unique("hi"))
}

// wantModelServedBy sends a request for model and checks that the account of served
// answered it and the others got no new request.
func wantModelServedBy(t *testing.T, tn tenant, model, served string, others ...string) {
	t.Helper()
	before := map[string]int{served: len(upstreamRequestsFor(t, served))}
	for _, o := range others {
		before[o] = len(upstreamRequestsFor(t, o))
	}
	if code, _, body := post(t, "/v1/responses", tn.Key, modelBody(model), nil); code != 200 {
		t.Fatalf("%s request: %d %s, want 200", model, code, body)
	}
	if n := len(upstreamRequestsFor(t, served)); n != before[served]+1 {
		t.Fatalf("%s: the account of %s got %d new requests, want 1", model, served, n-before[served])
	}
	for _, o := range others {
		if n := len(upstreamRequestsFor(t, o)); n != before[o] {
			t.Fatalf("%s: the account of %s got %d new requests, want none", model, o, n-before[o])
		}
	}
}

// breakersOf returns the state's breakers (absent: none).
func breakersOf(t *testing.T, st obj) []obj {
	t.Helper()
	raw, _ := st["breakers"].([]any)
	out := make([]obj, 0, len(raw))
	for _, b := range raw {
		out = append(out, b.(obj))
	}
	return out
}

// (a) One connection reset: the request is served by the other account, and the reset
// account keeps serving another model and — one failure being below the breaker's
// threshold — the same model too. Both a reset before any response byte (error class
// transport, which used to pause the whole account for 10 min) and a stream cut
// right after the headers (stream_cut).
func TestHealthBreakerSingleResetExcludesForTheRequestOnly(t *testing.T) {
	tests := []struct {
		name   string
		script obj
		stream bool
		class  string
	}{
		{"reset before the headers", obj{"reset_before_headers": true, "times": 1}, false, "transport"},
		{"stream cut after the headers", obj{"text": "from the cut account", "cut_after_events": 0, "times": 1}, true, "stream_cut"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cut, spare := unique("sk-cut"), unique("sk-spare")
			programCredential(t, cut, tt.script)
			programCredential(t, spare, obj{"text": "from the spare account"})
			tn, accts := newTenant(t, accountSpec{Credential: cut, Priority: 1}, accountSpec{Credential: spare, Priority: 2})

			var code int
			var body string
			if tt.stream {
				code, _, body, _ = postStream(t, "/v1/responses", tn.Key,
					fmt.Sprintf(`{"model":"gpt-4o-mini","input":%q,"stream":true}`, unique("hi")))
			} else {
				code, _, body = post(t, "/v1/responses", tn.Key, modelBody("gpt-4o-mini"), nil)
			}
			if code != 200 || !strings.Contains(body, "spare") {
				t.Fatalf("got %d %s, want 200 from the spare account", code, body)
			}
			rec := usageFor(t, tn.KeyID, 1)[0]
			if num(rec, "attempts") != 2 || num(rec, "account_id") != accts[1] {
				t.Fatalf("usage record = %v, want 2 attempts ending on account %d", rec, accts[1])
			}
			if n := len(upstreamRequestsFor(t, cut)); n != 1 {
				t.Fatalf("the cut account got %d requests, want 1", n)
			}
			st := accountHealth(t, accts[0])
			wantNull(t, st, healthDeadlines...)
			if b := breakersOf(t, st); len(b) != 0 {
				t.Fatalf("breakers %v after one %s failure, want none open", b, tt.class)
			}
			wantModelServedBy(t, tn, "gpt-4o", cut, spare)
			wantModelServedBy(t, tn, "gpt-4o-mini", cut, spare)
			assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
		})
	}
}

// (b) A 429 insufficient_quota pauses the account an hour with that reason, and the request
// is served by the other account; the paused account is not tried again.
func TestHealthBreakerInsufficientQuotaPausesTheAccount(t *testing.T) {
	broke, paid := unique("sk-broke"), unique("sk-paid")
	programCredential(t, broke, obj{"status": 429, "body": `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`})
	programCredential(t, paid, obj{"text": "from the paid account"})
	tn, accts := newTenant(t, accountSpec{Credential: broke, Priority: 1}, accountSpec{Credential: paid, Priority: 2})

	code, _, body := post(t, "/v1/responses", tn.Key, responsesBody, nil)
	if code != 200 || !strings.Contains(body, "from the paid account") {
		t.Fatalf("got %d %s, want 200 from the paid account", code, body)
	}
	st := accountHealth(t, accts[0])
	wantUntil(t, st, "paused_until", time.Hour)
	if st["pause_reason"] != "insufficient_quota" {
		t.Fatalf("pause_reason = %v, want insufficient_quota (state %v)", st["pause_reason"], st)
	}
	wantNull(t, st, "rate_limited_until", "overloaded_until", "disabled_reason")
	wantServedBy(t, tn, paid, broke)
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// (c) Threshold failures of one model open its breaker only: the account is skipped for
// that model and serves another; after the group's short cool-down one probe is sent to it,
// succeeds, and closes the breaker.
func TestHealthBreakerOpensForTheModelAndHealsByProbe(t *testing.T) {
	const cooldown = 5 * time.Second
	flaky, steady := unique("sk-flaky"), unique("sk-steady")
	// Retry-After above sameAccountRetryMax: each 503 fails over at once (no same-account
	// retry), so three requests are three failures.
	programCredential(t, flaky, obj{"status": 503, "headers": obj{"Retry-After": "30"}, "times": 3})
	programCredential(t, steady, obj{"text": "from the steady account"})
	tn, accts := newTenant(t, accountSpec{Credential: flaky, Priority: 1}, accountSpec{Credential: steady, Priority: 2})
	mustAdmin(t, "PATCH", fmt.Sprintf("/groups/%d", tn.GroupID), obj{"breaker_cooldown_ms": cooldown.Milliseconds()})

	for i := 0; i < 3; i++ {
		code, _, body := post(t, "/v1/responses", tn.Key, modelBody("gpt-4o-mini"), nil)
		if code != 200 || !strings.Contains(body, "from the steady account") {
			t.Fatalf("request %d: %d %s, want 200 from the steady account", i, code, body)
		}
	}
	if n := len(upstreamRequestsFor(t, flaky)); n != 3 {
		t.Fatalf("the flaky account got %d requests, want 3", n)
	}
	st := accountHealth(t, accts[0])
	wantNull(t, st, healthDeadlines...)
	b := breakersOf(t, st)
	if len(b) != 1 || b[0]["model"] != "gpt-4o-mini" || b[0]["state"] != "open" ||
		b[0]["reason"] != "upstream_status 503" || num(b[0], "failures") != 3 {
		t.Fatalf("breakers %v, want gpt-4o-mini open after 3 × upstream_status 503", b)
	}
	nextProbe, err := time.Parse(time.RFC3339Nano, fmt.Sprint(b[0]["next_probe_at"]))
	if err != nil || time.Until(nextProbe) > cooldown || time.Until(nextProbe) < -cooldown {
		t.Fatalf("next_probe_at %v (%v), want within the %v cool-down", b[0]["next_probe_at"], err, cooldown)
	}
	// The script is spent: the account would answer, but the open breaker keeps gpt-4o-mini
	// away from it (if the cool-down is not over yet), while gpt-4o goes to it.
	if time.Until(nextProbe) > 500*time.Millisecond {
		wantModelServedBy(t, tn, "gpt-4o-mini", steady, flaky)
	}
	wantModelServedBy(t, tn, "gpt-4o", flaky, steady)

	time.Sleep(time.Until(nextProbe) + 100*time.Millisecond)
	wantModelServedBy(t, tn, "gpt-4o-mini", flaky, steady) // the probe
	deadline := time.Now().Add(10 * time.Second)
	for len(breakersOf(t, accountHealth(t, accts[0]))) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("breakers %v after the probe's answer, want none", breakersOf(t, accountHealth(t, accts[0])))
		}
		time.Sleep(50 * time.Millisecond) // the probe's report is asynchronous
	}
	wantModelServedBy(t, tn, "gpt-4o-mini", flaky, steady)
	if m := gatewayMetric(t, "poolgate_breaker_openings_total"); m < 1 {
		t.Fatalf("poolgate_breaker_openings_total = %d, want at least 1", m)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
