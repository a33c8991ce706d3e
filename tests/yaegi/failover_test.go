package yaegi

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

func TestFailover(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t,
		accountSpec{name: "limited", priority: 1, script: &fakeupstream.Script{Status: 429, Headers: map[string]string{"Retry-After": "30"}}},
		accountSpec{name: "healthy", priority: 2, script: &fakeupstream.Script{Text: "from the healthy account"}},
	)
	limited, healthy := tn.accounts[0], tn.accounts[1]

	rec := serve(t, s.handler, "/v1/responses", bearer(tn.key), `{"model":"gpt-4o","input":"hi"}`)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "from the healthy account") {
		t.Fatalf("got %d %s, want 200 from the healthy account", rec.Code, rec.Body)
	}
	if rec.Header().Get("Retry-After") != "" {
		t.Errorf("the failed attempt's Retry-After leaked to the client")
	}
	if n := len(s.upstreamRequests(limited.cred)); n != 1 {
		t.Errorf("the rate-limited account got %d requests, want 1", n)
	}
	if n := len(s.upstreamRequests(healthy.cred)); n != 1 {
		t.Errorf("the healthy account got %d requests, want 1", n)
	}
	rows := s.waitUsage(t, tn.keyID, 1)
	if r := rows[0]; r.Status != 200 || r.AccountID != healthy.id || r.Attempts != 2 {
		t.Errorf("usage row %+v, want status 200 on account %d after 2 attempts", r, healthy.id)
	}
	until := s.accountState(t, limited.id)
	if until == nil || time.Until(*until) < 10*time.Second {
		t.Errorf("rate_limited_until = %v, want about 30s ahead (Retry-After: 30)", until)
	}

	// The marked account is skipped: the next request goes straight to the healthy one.
	rec = serve(t, s.handler, "/v1/responses", bearer(tn.key), `{"model":"gpt-4o","input":"again"}`)
	if rec.Code != 200 {
		t.Fatalf("second request: %d %s", rec.Code, rec.Body)
	}
	if n := len(s.upstreamRequests(limited.cred)); n != 1 {
		t.Errorf("the rate-limited account got %d requests in all, want still 1", n)
	}
	s.waitIdle(t, tn)
}

func TestFailoverExhausted(t *testing.T) {
	s := getStack(t)
	tests := []struct {
		name     string
		status   int
		wantCode int
		wantType string
		wantMsg  string
		tries    int // requests per account
	}{
		{name: "all rate limited", status: 429, wantCode: 429, wantType: "rate_limit_error", wantMsg: "Upstream rate limit exceeded, please retry later", tries: 1},
		// A 500 is retried once on its account before failing over (retry.go).
		{name: "all failing", status: 500, wantCode: 502, wantMsg: "Upstream service temporarily unavailable", tries: 2},
		{name: "all unauthorised", status: 401, wantCode: 502, wantMsg: "Upstream authentication failed, please contact administrator", tries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := &fakeupstream.Script{Status: tt.status}
			tn := s.seed(t, accountSpec{name: "a", priority: 1, script: sc}, accountSpec{name: "b", priority: 2, script: sc})
			rec := serve(t, s.handler, "/v1/chat/completions", bearer(tn.key), `{"model":"gpt-4o","messages":[]}`)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			e := decodeError(t, rec)
			if e.Error.Message != tt.wantMsg || (tt.wantType != "" && e.Error.Type != tt.wantType) {
				t.Errorf("error %+v, want %q %q", e.Error, tt.wantType, tt.wantMsg)
			}
			for _, a := range tn.accounts {
				if n := len(s.upstreamRequests(a.cred)); n != tt.tries {
					t.Errorf("account %d got %d requests, want %d", a.id, n, tt.tries)
				}
			}
			rows := s.waitUsage(t, tn.keyID, 1)
			if r := rows[0]; r.Status != tt.wantCode || r.Attempts != 2*tt.tries {
				t.Errorf("usage row %+v, want status %d after %d attempts", r, tt.wantCode, 2*tt.tries)
			}
			s.waitIdle(t, tn)
		})
	}
}

func TestUpstreamClientErrorPassesThrough(t *testing.T) {
	s := getStack(t)
	const upstreamBody = `{"error":{"message":"Unsupported parameter: 'foo'.","type":"invalid_request_error","param":"foo","code":null}}`
	tn := s.seed(t, accountSpec{name: "a", priority: 1, script: &fakeupstream.Script{Status: 400, Body: upstreamBody}},
		accountSpec{name: "b", priority: 2})
	rec := serve(t, s.handler, "/v1/responses", bearer(tn.key), `{"model":"gpt-4o","foo":1}`)
	if rec.Code != 400 || strings.TrimSpace(rec.Body.String()) != upstreamBody {
		t.Errorf("got %d %s, want the upstream's 400 and body unchanged", rec.Code, rec.Body)
	}
	if n := len(s.upstreamRequests(tn.accounts[1].cred)); n != 0 {
		t.Errorf("a 400 failed over to the second account (%d requests)", n)
	}
	s.waitIdle(t, tn)
}

func TestClientGoneMidStream(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t, accountSpec{name: "a", priority: 1, script: &fakeupstream.Script{ChunkDelayMS: 300}})
	srv := httptest.NewServer(s.handler)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/responses",
		strings.NewReader(`{"model":"gpt-4o","input":"hi","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+tn.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "event: response.created") {
		t.Fatalf("first line %q, %v", line, err)
	}
	cancel()
	resp.Body.Close()

	rows := s.waitUsage(t, tn.keyID, 1)
	if r := rows[0]; r.Status != 499 || r.ErrorClass != "client_gone" {
		t.Errorf("usage row %+v, want status 499 client_gone", r)
	}
	s.waitIdle(t, tn)
}
