package plugin

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

func TestFailover429ThenSuccess(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 429, body: `{"error":{"message":"slow down"}}`, headers: map[string]string{
		// A wait beyond sameAccountRetryMax (3s): no same-account retry, straight to another account.
		"Retry-After": "30", "X-Ratelimit-Reset-Requests": "6s", "X-From": "account-1",
	}})
	up.set("up-2", okReply("from two"))
	stub := newContractStub(t,
		stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"},
		stubAccount{id: 2, baseURL: up.srv.URL, apiKey: "up-2"},
	)
	p := newTestPlugin(t, stub, nil)

	rec := do(p, "/v1/responses", `{"model":"gpt-x"}`, nil)
	if rec.Code != 200 || rec.Body.String() != okReply("from two").body {
		t.Fatalf("client got %d %q", rec.Code, rec.Body.String())
	}
	if rec.Header().Get("X-From") != "" || rec.Header().Get("Retry-After") != "" {
		t.Fatal("headers of the failed attempt reached the client")
	}
	calls := stub.admitCalls()
	if len(calls) != 2 {
		t.Fatalf("%d admit calls, want 2", len(calls))
	}
	second := calls[1]
	wantFailed := &failedAttempt{AccountID: 1, Status: 429, ErrorClass: "upstream_status", RetryAfter: "30", RatelimitReset: "6s"}
	if second.GrantID != "g_1" || !reflect.DeepEqual(second.Exclude, []int64{1}) || !reflect.DeepEqual(second.Failed, wantFailed) {
		t.Fatalf("re-admission = %+v (failed %+v)", second, second.Failed)
	}
	if second.RequestID != calls[0].RequestID {
		t.Fatal("re-admission must carry the same request id")
	}

	r := stub.waitReport()
	if r.GrantID != "g_1" || r.AccountID != 2 || r.Status != 200 || r.ErrorClass != "" || len(r.Attempts) != 2 {
		t.Fatalf("report = %+v", r)
	}
	if r.Attempts[0].AccountID != 1 || r.Attempts[0].Status != 429 || r.Attempts[1].AccountID != 2 || r.Attempts[1].Status != 200 {
		t.Fatalf("attempts = %+v", r.Attempts)
	}
	if a := r.Attempts[0]; a.RetryAfter != "30" || a.RatelimitReset != "6s" || r.Attempts[1].RetryAfter != "" {
		t.Fatalf("attempts = %+v, want the 429's Retry-After and reset on the first only", r.Attempts)
	}
	if string(r.Usage) != `{"input_tokens":11,"output_tokens":5}` || r.UsageFormat != "responses" {
		t.Fatalf("usage = %s (%s)", r.Usage, r.UsageFormat)
	}
}

func TestFailoverStopsAtSwitchLimit(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	var accounts []stubAccount
	for i := 1; i <= 5; i++ {
		key := "up-" + strconv.Itoa(i)
		up.set(key, upstreamReply{status: 429, body: `{}`, headers: map[string]string{"Retry-After": "9"}})
		accounts = append(accounts, stubAccount{id: int64(i), baseURL: up.srv.URL, apiKey: key})
	}
	stub := newContractStub(t, accounts...)
	p := newTestPlugin(t, stub, func(c *Config) { c.MaxAccountSwitches = 2 })

	rec := do(p, "/v1/responses", `{"model":"m"}`, nil)
	_, typ, msg := errorOf(t, rec.Body.Bytes())
	if rec.Code != 429 || typ != "rate_limit_error" || msg != "Upstream rate limit exceeded, please retry later" {
		t.Fatalf("got %d %q %q", rec.Code, typ, msg)
	}
	if rec.Header().Get("Retry-After") != "9" {
		t.Fatalf("Retry-After = %q", rec.Header().Get("Retry-After"))
	}
	if n := len(up.recorded()); n != 3 {
		t.Fatalf("%d upstream attempts, want 3 (2 switches)", n)
	}
	calls := stub.admitCalls()
	wantExclude := [][]int64{{}, {1}, {1, 2}}
	if len(calls) != 3 {
		t.Fatalf("%d admit calls, want 3", len(calls))
	}
	for i, c := range calls {
		if !reflect.DeepEqual(c.Exclude, wantExclude[i]) {
			t.Fatalf("admit %d exclude = %v, want %v", i, c.Exclude, wantExclude[i])
		}
	}
	r := stub.waitReport()
	if r.Status != 429 || r.AccountID != 3 || r.ErrorClass != "upstream_status" || len(r.Attempts) != 3 {
		t.Fatalf("report = %+v", r)
	}
}

func TestExhaustedMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int // 0: transport error
		switches   int
		wantStatus int
		wantType   string // Anthropic's error types: the requests go to /v1/messages
		wantMsg    string
	}{
		{"401", 401, 3, 502, "api_error", "Upstream authentication failed, please contact administrator"},
		{"402", 402, 3, 502, "api_error", "Upstream request failed"},
		{"403", 403, 3, 502, "api_error", "Upstream access forbidden, please contact administrator"},
		{"429", 429, 3, 429, "rate_limit_error", "Upstream rate limit exceeded, please retry later"},
		{"529", 529, 3, 503, "overloaded_error", "Upstream service overloaded, please retry later"},
		{"500", 500, 3, 502, "api_error", "Upstream service temporarily unavailable"},
		{"502", 502, 3, 502, "api_error", "Upstream service temporarily unavailable"},
		{"503", 503, 3, 502, "api_error", "Upstream service temporarily unavailable"},
		{"504", 504, 3, 502, "api_error", "Upstream service temporarily unavailable"},
		{"501", 501, 3, 502, "api_error", "Upstream request failed"},
		{"transport error", 0, 3, 502, "api_error", "Upstream request failed"},
		{"503 without switches", 503, 0, 502, "api_error", "Upstream service temporarily unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			body := `{"error":{"message":"secret upstream detail"}}`
			switch tt.status { // only a credential fault fails over (credential.go)
			case 401:
				body = `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key secret upstream detail"}}`
			case 403:
				body = `{"type":"error","error":{"type":"permission_error","message":"This organization has been disabled."}}`
			}
			up.set("up-1", upstreamReply{status: tt.status, body: body})
			base := up.srv.URL
			if tt.status == 0 {
				dead := httptest.NewServer(http.NotFoundHandler())
				base = dead.URL
				dead.Close()
			}
			// One account: with switches left, the re-admission finds none (no_account).
			stub := newContractStub(t, stubAccount{id: 1, baseURL: base, apiKey: "up-1"})
			p := newTestPlugin(t, stub, func(c *Config) {
				c.MaxAccountSwitches = tt.switches
				c.SameAccountRetryMax = "0s" // the mapping of one failure, not the retry (retry_test.go)
			})
			rec := do(p, "/v1/messages", `{"model":"m"}`, nil)
			shape, typ, msg := errorOf(t, rec.Body.Bytes())
			if rec.Code != tt.wantStatus || typ != tt.wantType || msg != tt.wantMsg || shape != "anthropic" {
				t.Fatalf("got %d %s %q %q", rec.Code, shape, typ, msg)
			}
			wantAdmits := 2
			if tt.switches == 0 {
				wantAdmits = 1
			}
			calls := stub.admitCalls()
			if len(calls) != wantAdmits {
				t.Fatalf("%d admit calls, want %d", len(calls), wantAdmits)
			}
			if tt.switches > 0 && (calls[1].Failed == nil || calls[1].Failed.Status != tt.status) {
				t.Fatalf("re-admission failed = %+v", calls[1].Failed)
			}
			r := stub.waitReport()
			if r.Status != tt.wantStatus || r.AccountID != 1 || len(r.Attempts) != 1 || r.Attempts[0].Status != tt.status {
				t.Fatalf("report = %+v", r)
			}
		})
	}
}

func TestNonFailoverErrorPassesThrough(t *testing.T) {
	t.Parallel()
	const body = `{"error":{"message":"Unsupported parameter: 'foo'","type":"invalid_request_error","param":"foo"}}`
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 400, body: body})
	up.set("up-2", okReply("never"))
	stub := newContractStub(t,
		stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"},
		stubAccount{id: 2, baseURL: up.srv.URL, apiKey: "up-2"},
	)
	p := newTestPlugin(t, stub, nil)
	rec := do(p, "/v1/chat/completions", `{"model":"m","foo":1}`, nil)
	if rec.Code != 400 || rec.Body.String() != body {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
	if n := len(stub.admitCalls()); n != 1 {
		t.Fatalf("%d admit calls; a 400 must not fail over", n)
	}
	r := stub.waitReport()
	if r.Status != 400 || r.ErrorClass != "upstream_status" || r.AccountID != 1 || !jsonsse.IsNull(r.Usage) {
		t.Fatalf("report = %+v", r)
	}
}

func TestReadmissionRejectIsCopied(t *testing.T) {
	t.Parallel()
	const body = `{"error":{"type":"billing_error","message":"Insufficient account balance"}}`
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 500, body: `{}`})
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	stub.admitHook = func(w http.ResponseWriter, ar admitRequest) bool {
		if ar.GrantID == "" {
			return false
		}
		w.Header().Set(headerReject, "billing")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(body))
		return true
	}
	p := newTestPlugin(t, stub, nil)
	rec := do(p, "/v1/responses", `{"model":"m"}`, nil)
	if rec.Code != 403 || rec.Body.String() != body {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
	r := stub.waitReport()
	if r.Status != 403 || r.ErrorClass != "rejected" || r.GrantID != "g_1" {
		t.Fatalf("report = %+v", r)
	}
}

func TestReadmissionUnavailable(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 529, body: `{}`})
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	stub.admitHook = func(w http.ResponseWriter, ar admitRequest) bool {
		if ar.GrantID == "" {
			return false
		}
		w.WriteHeader(http.StatusBadGateway)
		return true
	}
	p := newTestPlugin(t, stub, nil)
	rec := do(p, "/v1/responses", `{"model":"m"}`, nil)
	_, typ, msg := errorOf(t, rec.Body.Bytes())
	if rec.Code != 503 || typ != "api_error" || msg != "Service temporarily unavailable" {
		t.Fatalf("got %d %q %q", rec.Code, typ, msg)
	}
	// The grant from the first admission is still reported, so its slots are released.
	r := stub.waitReport()
	if r.Status != 503 || r.ErrorClass != "control_unavailable" || r.GrantID != "g_1" {
		t.Fatalf("report = %+v", r)
	}
}

func TestRatelimitResetCarriesEveryResetHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{name: "none", headers: map[string]string{"Retry-After": "3"}, want: ""},
		{name: "openai requests", headers: map[string]string{"x-ratelimit-reset-requests": "6s"}, want: "6s"},
		{name: "openai both", headers: map[string]string{"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"},
			want: "1s, 6m0s"},
		{name: "anthropic RFC 3339 times", headers: map[string]string{
			"anthropic-ratelimit-requests-reset":      "2026-03-01T10:00:10Z",
			"anthropic-ratelimit-tokens-reset":        "2026-03-01T10:00:20Z",
			"anthropic-ratelimit-input-tokens-reset":  "2026-03-01T10:00:30Z",
			"anthropic-ratelimit-output-tokens-reset": " 2026-03-01T10:00:40Z ",
		}, want: "2026-03-01T10:00:10Z, 2026-03-01T10:00:20Z, 2026-03-01T10:00:30Z, 2026-03-01T10:00:40Z"},
		{name: "anthropic unified", headers: map[string]string{"anthropic-ratelimit-unified-reset": "1772359260"}, want: "1772359260"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			if got := ratelimitReset(h); got != tt.want {
				t.Fatalf("ratelimitReset = %q, want %q", got, tt.want)
			}
		})
	}
}
