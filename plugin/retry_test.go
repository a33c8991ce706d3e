package plugin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// noSameAccountRetry turns same-account retries off, for tests of failover itself.
func noSameAccountRetry(c *Config) { c.SameAccountRetryMax = "0s" }

// wantAttempt is one expected attempt of a report.
type wantAttempt struct {
	account int64
	status  int
	retried bool
}

func checkAttempts(t *testing.T, got []attemptReport, want []wantAttempt) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("attempts = %+v, want %+v", got, want)
	}
	for i, w := range want {
		g := got[i]
		if g.AccountID != w.account || g.Status != w.status || g.RetriedSameAccount != w.retried || g.HedgeLost {
			t.Fatalf("attempt %d = %+v, want %+v (all: %+v)", i, g, w, got)
		}
	}
}

func TestSameAccountRetry(t *testing.T) {
	t.Parallel()
	ra := func(v string) map[string]string { return map[string]string{"Retry-After": v} }
	tests := []struct {
		name   string
		first  fakeupstream.Script // account 1's answer (Times: how often)
		adjust func(*Config)
		want   []wantAttempt
		admits int           // admit calls: 1 when no account switch happened
		waited time.Duration // the least the request must have taken
	}{
		{"429 with a short Retry-After, waited out", fakeupstream.Script{Status: 429, Headers: ra("1"), Times: 1}, nil,
			[]wantAttempt{{1, 429, true}, {1, 200, false}}, 1, time.Second},
		{"503 with a short Retry-After", fakeupstream.Script{Status: 503, Headers: ra("0.5"), Times: 1}, nil,
			[]wantAttempt{{1, 503, true}, {1, 200, false}}, 1, 500 * time.Millisecond},
		{"500 once", fakeupstream.Script{Status: 500, Times: 1}, nil,
			[]wantAttempt{{1, 500, true}, {1, 200, false}}, 1, 0},
		{"502 once", fakeupstream.Script{Status: 502, Times: 1}, nil,
			[]wantAttempt{{1, 502, true}, {1, 200, false}}, 1, 0},
		{"503 without Retry-After", fakeupstream.Script{Status: 503, Times: 1}, nil,
			[]wantAttempt{{1, 503, true}, {1, 200, false}}, 1, 0},
		{"500 twice: one retry per account, then failover", fakeupstream.Script{Status: 500, Times: 2}, nil,
			[]wantAttempt{{1, 500, true}, {1, 500, false}, {2, 200, false}}, 2, 0},
		{"429 asking for longer than sameAccountRetryMax", fakeupstream.Script{Status: 429, Headers: ra("5"), Times: 1}, nil,
			[]wantAttempt{{1, 429, false}, {2, 200, false}}, 2, 0},
		{"429 without Retry-After", fakeupstream.Script{Status: 429, Times: 1}, nil,
			[]wantAttempt{{1, 429, false}, {2, 200, false}}, 2, 0},
		{"529 is not retried", fakeupstream.Script{Status: 529, Times: 1}, nil,
			[]wantAttempt{{1, 529, false}, {2, 200, false}}, 2, 0},
		{"retries off", fakeupstream.Script{Status: 500, Times: 1}, noSameAccountRetry,
			[]wantAttempt{{1, 500, false}, {2, 200, false}}, 2, 0},
		{"the wait would pass the request deadline", fakeupstream.Script{Status: 429, Headers: ra("2"), Times: 1},
			func(c *Config) { c.RequestTimeout = "1500ms" },
			[]wantAttempt{{1, 429, false}, {2, 200, false}}, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake, fakeURL := newFakeUpstream(t)
			fake.SetCredentialScript("acct-1", tt.first)
			stub := newContractStub(t,
				stubAccount{id: 1, baseURL: fakeURL, apiKey: "acct-1"},
				stubAccount{id: 2, baseURL: fakeURL, apiKey: "acct-2"},
			)
			began := time.Now()
			rec := do(newTestPlugin(t, stub, tt.adjust), "/v1/responses", `{"model":"gpt-4o","input":"hi"}`, nil)
			took := time.Since(began)
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), fakeupstream.DefaultText) {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			if took < tt.waited {
				t.Errorf("the request took %s: the Retry-After of %s was not waited out", took, tt.waited)
			}
			if n := len(stub.admitCalls()); n != tt.admits {
				t.Errorf("%d admit calls, want %d", n, tt.admits)
			}
			r := stub.waitReport()
			if r.Status != 200 || r.ErrorClass != "" || r.AccountID != tt.want[len(tt.want)-1].account {
				t.Fatalf("report = status %d class %q account %d", r.Status, r.ErrorClass, r.AccountID)
			}
			checkAttempts(t, r.Attempts, tt.want)
		})
	}
}

// A streaming client gets keep-alives while a same-account retry waits, and then the
// stream of the retried attempt after them.
func TestSameAccountRetryPingsAStream(t *testing.T) {
	t.Parallel()
	fake, fakeURL := newFakeUpstream(t)
	fake.SetCredentialScript("acct-1", fakeupstream.Script{Status: 429, Headers: map[string]string{"Retry-After": "1"}, Times: 1})
	stub := newContractStub(t, stubAccount{id: 1, baseURL: fakeURL, apiKey: "acct-1"})
	p := newTestPlugin(t, stub, func(c *Config) { c.PingInterval = "200ms" })

	rec := do(p, "/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`, nil)
	body := rec.Body.String()
	if rec.Code != 200 || !strings.HasPrefix(body, ": keep-alive\n") || !strings.Contains(body, "response.completed") {
		t.Fatalf("status %d, body %q: want keep-alives, then the stream", rec.Code, body)
	}
	r := stub.waitReport()
	if r.Status != 200 || r.ErrorClass != "" {
		t.Fatalf("report = status %d class %q", r.Status, r.ErrorClass)
	}
	checkAttempts(t, r.Attempts, []wantAttempt{{1, 429, true}, {1, 200, false}})
}

// A client that leaves during the wait ends it: no second attempt, 499, the 429 reported.
func TestSameAccountRetryClientLeaves(t *testing.T) {
	t.Parallel()
	fake, fakeURL := newFakeUpstream(t)
	fake.SetCredentialScript("acct-1", fakeupstream.Script{Status: 429, Headers: map[string]string{"Retry-After": "3"}})
	stub := newContractStub(t, stubAccount{id: 1, baseURL: fakeURL, apiKey: "acct-1"})
	p := newTestPlugin(t, stub, nil)

	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(`{"model":"gpt-4o","input":"hi"}`)).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	time.AfterFunc(300*time.Millisecond, cancel)
	done := make(chan struct{})
	go func() {
		p.ServeHTTP(httptest.NewRecorder(), req)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2500 * time.Millisecond):
		t.Fatal("the request outlived its client: the wait did not end when the client left")
	}
	if n := len(fake.Requests()); n != 1 {
		t.Errorf("%d upstream requests, want 1", n)
	}
	r := stub.waitReport()
	if r.Status != statusClientClosed || r.ErrorClass != classClientGone {
		t.Fatalf("report = status %d class %q", r.Status, r.ErrorClass)
	}
	// Not retried: the 429 is the last attempt, so controlsvc rests the account from it.
	checkAttempts(t, r.Attempts, []wantAttempt{{1, 429, false}})
}

func TestRetryAfterDelay(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		v     string
		want  time.Duration
		asked bool
	}{
		{"none", "", 0, false},
		{"seconds", "2", 2 * time.Second, true},
		{"zero", "0", 0, true},
		{"fraction", "0.25", 250 * time.Millisecond, true},
		{"negative", "-1", 0, false},
		{"NaN", "NaN", 0, false},
		{"beyond a week", "999999999", 0, false},
		{"HTTP date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"HTTP date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"garbage", "soon", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, asked := retryAfterDelay(tt.v, now)
			if got != tt.want || asked != tt.asked {
				t.Fatalf("retryAfterDelay(%q) = %s %v, want %s %v", tt.v, got, asked, tt.want, tt.asked)
			}
		})
	}
}

// Only an upstream_status failure qualifies: a 429 another rule classified (quota, a
// context-length 400, a credential 401) or a deadline is never retried on the same account.
func TestSameAccountWaitClasses(t *testing.T) {
	x := &exchange{p: &Poolgate{retryMax: 3 * time.Second, requestLimit: time.Minute}, start: time.Now()}
	tests := []struct {
		name  string
		f     failedAttempt
		want  time.Duration
		retry bool
	}{
		{"429 upstream_status", failedAttempt{AccountID: 1, Status: 429, ErrorClass: classUpstreamStatus, RetryAfter: "1"}, time.Second, true},
		{"429 quota", failedAttempt{AccountID: 1, Status: 429, ErrorClass: "quota", RetryAfter: "1"}, 0, false},
		{"400 context length", failedAttempt{AccountID: 1, Status: 400, ErrorClass: "context_length_exceeded"}, 0, false},
		{"first token timeout", failedAttempt{AccountID: 1, ErrorClass: classFirstTokenTimeout}, 0, false},
		{"response header timeout", failedAttempt{AccountID: 1, ErrorClass: classResponseHeaderTimeout}, 0, false},
		{"transport", failedAttempt{AccountID: 1, ErrorClass: classTransport}, 0, false},
		{"503 Retry-After at the limit", failedAttempt{AccountID: 1, Status: 503, ErrorClass: classUpstreamStatus, RetryAfter: "3"}, 3 * time.Second, true},
		{"500 with a long Retry-After", failedAttempt{AccountID: 1, Status: 500, ErrorClass: classUpstreamStatus, RetryAfter: "10"}, 0, false},
		{"504", failedAttempt{AccountID: 1, Status: 504, ErrorClass: classUpstreamStatus}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			got, retry := sameAccountWait(x, &f)
			if got != tt.want || retry != tt.retry {
				t.Fatalf("sameAccountWait = %s %v, want %s %v", got, retry, tt.want, tt.retry)
			}
		})
	}
}
