package plugin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseControlURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		list, single string
		want         []string
		wantErr      error
	}{
		{name: "single URL when no list", single: "http://a:1/", want: []string{"http://a:1"}},
		{name: "list wins", list: "http://a:1,https://b:2", single: "http://c:3", want: []string{"http://a:1", "https://b:2"}},
		{name: "spaces and trailing slashes", list: " http://a:1/ ,  http://b:2 ", want: []string{"http://a:1", "http://b:2"}},
		{name: "duplicates kept once", list: "http://a:1,http://a:1/", want: []string{"http://a:1"}},
		{name: "blank list falls back", list: "  ", single: "http://a:1", want: []string{"http://a:1"}},
		{name: "empty entry", list: "http://a:1,,http://b:2", wantErr: errBadControlURL},
		{name: "relative entry", list: "http://a:1,b:2", wantErr: errBadControlURL},
		{name: "ftp entry", list: "ftp://a", wantErr: errBadControlURL},
		{name: "bad single", single: "a:1", wantErr: errBadControlURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseControlURLs(tt.list, tt.single)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// deadAddress is a URL on which nothing listens.
func deadAddress(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

// shuttingDown answers every admit call as a draining controlsvc does.
func shuttingDown(w http.ResponseWriter, ar admitRequest) bool {
	w.Header().Set(headerReject, rejectShuttingDown)
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `{"error":{"type":"api_error","message":"Service is restarting, please retry"}}`)
	return true
}

// resetReadmissions cuts the connection of every re-admission before answering.
func resetReadmissions(t *testing.T) func(w http.ResponseWriter, ar admitRequest) bool {
	return func(w http.ResponseWriter, ar admitRequest) bool {
		if ar.GrantID == "" {
			return false
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return true
		}
		conn.Close()
		return true
	}
}

// withControlURLs points the plugin at the list and closes its shared objects first at
// cleanup (cleanups run last-in first-out, so the stubs are still up for the last flush).
func withControlURLs(t *testing.T, urls ...string) func(*Config) {
	list := strings.Join(urls, ",")
	t.Cleanup(func() { closeControl(list, testSecret) })
	return func(c *Config) { c.ControlURLs = list }
}

func TestFirstAdmissionMovesToTheNextInstance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		first func(t *testing.T) (url string, stub *contractStub)
	}{
		{name: "dead address", first: func(t *testing.T) (string, *contractStub) { return deadAddress(t), nil }},
		{name: "shutting down", first: func(t *testing.T) (string, *contractStub) {
			s := newContractStub(t)
			s.admitHook = shuttingDown
			return s.URL(), s
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			up.set("up-1", okReply("hi"))
			live := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
			firstURL, first := tt.first(t)
			p := newTestPlugin(t, live, withControlURLs(t, firstURL, live.URL()))
			for i := 0; i < 2; i++ {
				rec := do(p, "/v1/responses", `{"model":"m"}`, nil)
				if rec.Code != 200 {
					t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body.String())
				}
			}
			if n := len(live.admitCalls()); n != 2 {
				t.Fatalf("live instance got %d admit calls, want 2", n)
			}
			reps := live.waitReports(2)
			if reps[0].Status != 200 || reps[1].Status != 200 {
				t.Fatalf("reports = %+v", reps)
			}
			if first != nil {
				// The second request goes straight to the instance that answered last.
				if n := len(first.admitCalls()); n != 1 {
					t.Fatalf("shutting-down instance got %d admit calls, want 1", n)
				}
				first.mu.Lock()
				n := len(first.reports)
				first.mu.Unlock()
				if n != 0 {
					t.Fatalf("shutting-down instance got %d reports", n)
				}
			}
		})
	}
}

func TestNoInstanceLeft(t *testing.T) {
	t.Parallel()
	a := newContractStub(t)
	a.admitHook = shuttingDown
	tests := []struct {
		name       string
		urls       []string
		wantStatus int
		wantMsg    string
		wantRetry  string
	}{
		{name: "all dead", urls: []string{deadAddress(t), deadAddress(t)}, wantStatus: 503, wantMsg: msgUnavailable},
		{name: "dead and shutting down", urls: []string{a.URL(), deadAddress(t)}, wantStatus: 503,
			wantMsg: "Service is restarting, please retry", wantRetry: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPlugin(t, a, withControlURLs(t, tt.urls...))
			rec := do(p, "/v1/responses", `{"model":"m"}`, nil)
			_, _, msg := errorOf(t, rec.Body.Bytes())
			if rec.Code != tt.wantStatus || msg != tt.wantMsg || rec.Header().Get("Retry-After") != tt.wantRetry {
				t.Fatalf("got %d %q Retry-After=%q", rec.Code, msg, rec.Header().Get("Retry-After"))
			}
		})
	}
}

// A re-admission whose connection breaks before any answer goes to the next instance: the
// grant lives in Redis, which every instance shares.
func TestReadmissionMovesOnAfterAReset(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 500, body: `{"error":{"message":"boom"}}`})
	up.set("up-2", okReply("from two"))
	accounts := []stubAccount{{id: 1, baseURL: up.srv.URL, apiKey: "up-1"}, {id: 2, baseURL: up.srv.URL, apiKey: "up-2"}}
	a := newContractStub(t, accounts...)
	a.admitHook = resetReadmissions(t)
	b := newContractStub(t, accounts...)
	p := newTestPlugin(t, a, withControlURLs(t, a.URL(), b.URL()))
	rec := do(p, "/v1/responses", `{"model":"m"}`, nil)
	if rec.Code != 200 || rec.Body.String() != okReply("from two").body {
		t.Fatalf("client got %d %q", rec.Code, rec.Body.String())
	}
	calls := b.admitCalls()
	if len(calls) != 1 || calls[0].GrantID != "g_1" || !reflect.DeepEqual(calls[0].Exclude, []int64{1}) {
		t.Fatalf("second instance's admit calls = %+v", calls)
	}
	if r := b.waitReport(); r.GrantID != "g_1" || r.AccountID != 2 || r.Status != 200 {
		t.Fatalf("report = %+v", r)
	}
}

func TestRenewalsAndReportsReachTheLiveInstance(t *testing.T) {
	t.Parallel()
	live := newContractStub(t)
	client := newControlClient(deadAddress(t)+","+live.URL(), testSecret)
	rn := newRenewer(client, 20*time.Millisecond)
	defer rn.close()
	rp := newReporter(client, 256, 100)
	defer rp.close()
	register(rn, lease{GrantID: "g_1", UserID: 1, AccountID: 2}, time.Time{})
	enqueue(rp, report{GrantID: "g_1", RequestID: "req_1", Status: 200})
	if r := live.waitReport(); r.RequestID != "req_1" {
		t.Fatalf("report = %+v", r)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		live.mu.Lock()
		n := len(live.renews)
		live.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d renewals reached the live instance", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deadlineServer answers admit calls never: it records the call's deadline_ms and when the
// plugin gave up on the call.
type deadlineServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	sent   int64
	gaveUp time.Time
}

func TestAdmitCarriesItsOwnDeadline(t *testing.T) {
	t.Parallel()
	d := &deadlineServer{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ar admitRequest
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &ar)
		<-r.Context().Done()
		d.mu.Lock()
		d.sent, d.gaveUp = ar.DeadlineMs, time.Now()
		d.mu.Unlock()
	}))
	t.Cleanup(d.srv.Close)
	t.Cleanup(func() { closeControl(d.srv.URL, testSecret) })
	cfg := func(c *Config) {
		c.ControlURL = d.srv.URL
		c.AdmissionTimeout = "300ms"
		c.MaxWait = "400ms"
	}
	stub := newContractStub(t)
	p := newTestPlugin(t, stub, cfg)
	before := time.Now()
	rec := do(p, "/v1/responses", `{"model":"m"}`, nil)
	after := time.Now()
	if rec.Code != 503 {
		t.Fatalf("status %d, want 503 after the bound", rec.Code)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		d.mu.Lock()
		sent, gaveUp := d.sent, d.gaveUp
		d.mu.Unlock()
		if !gaveUp.IsZero() {
			bound := admitBound(p)
			lo, hi := deadlineMs(before.Add(bound)), deadlineMs(after.Add(bound))
			if sent < lo || sent > hi {
				t.Fatalf("deadline_ms %d outside [%d, %d]: not now + admissionTimeout + maxWait", sent, lo, hi)
			}
			// The call ends at the deadline it announced, not earlier.
			if ms := deadlineMs(gaveUp); ms < sent-5 {
				t.Fatalf("plugin gave up at %d, %d ms before its deadline_ms %d", ms, sent-ms, sent)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the admit call never ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
