package yaegi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// Same-account retries (plugin retry.go) under Yaegi against the real controlsvc: the wait
// (a wakeup raised by a timer, the client's context or the stall watchdog), keep-alives
// during it, and the second attempt on the same grant.
func TestSameAccountRetryUnderYaegi(t *testing.T) {
	s := getStack(t)
	pinging, err := plugin(t).newHandler(t.Context(), nextHandler(),
		s.pluginSettings(map[string]any{"pingInterval": "200ms"}), "poolgate-retry-pings")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		first  fakeupstream.Script
		h      http.Handler
		body   string
		pinged bool
	}{
		{"429 with Retry-After 1", fakeupstream.Script{Status: 429, Headers: map[string]string{"Retry-After": "1"}, Times: 1},
			s.handler, `{"model":"gpt-4o","input":"hi"}`, false},
		{"500 once", fakeupstream.Script{Status: 500, Times: 1}, s.handler, `{"model":"gpt-4o","input":"hi"}`, false},
		{"429 on a stream, keep-alives while it waits", fakeupstream.Script{Status: 429, Headers: map[string]string{"Retry-After": "1"}, Times: 1},
			pinging, `{"model":"gpt-4o","input":"hi","stream":true}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := tt.first
			tn := s.seed(t,
				accountSpec{name: "a", priority: 1, script: &first},
				accountSpec{name: "b", priority: 2, script: &fakeupstream.Script{Text: "from b"}},
			)
			rec := serve(t, tt.h, "/v1/responses", bearer(tn.key), tt.body)
			body := rec.Body.String()
			if rec.Code != 200 || !strings.Contains(body, fakeupstream.DefaultText) {
				t.Fatalf("got %d %s, want 200 from account a", rec.Code, body)
			}
			if tt.pinged != strings.HasPrefix(body, ": keep-alive\n") {
				t.Errorf("keep-alives before the stream = %v, want %v: %q", !tt.pinged, tt.pinged, body)
			}
			if n := len(s.upstreamRequests(tn.accounts[0].cred)); n != 2 {
				t.Errorf("account a got %d requests, want 2", n)
			}
			if n := len(s.upstreamRequests(tn.accounts[1].cred)); n != 0 {
				t.Errorf("account b got %d requests, want 0", n)
			}
			rows := s.waitUsage(t, tn.keyID, 1)
			if r := rows[0]; r.Status != 200 || r.AccountID != tn.accounts[0].id || r.Attempts != 2 {
				t.Errorf("usage row %+v, want status 200 on account a after 2 attempts", r)
			}
			s.waitIdle(t, tn)
		})
	}
}

// A client that leaves while a same-account retry waits ends the wait: the request returns
// long before the Retry-After, with one upstream request, and frees its slots.
func TestSameAccountRetryClientLeavesUnderYaegi(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t, accountSpec{name: "a", priority: 1,
		script: &fakeupstream.Script{Status: 429, Headers: map[string]string{"Retry-After": "3"}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(`{"model":"gpt-4o","input":"hi"}`)).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+tn.key)
	time.AfterFunc(300*time.Millisecond, cancel)
	done := make(chan struct{})
	go func() {
		s.handler.ServeHTTP(httptest.NewRecorder(), req)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2500 * time.Millisecond):
		t.Fatal("the request outlived its client: the wait did not end when the client left")
	}
	if n := len(s.upstreamRequests(tn.accounts[0].cred)); n != 1 {
		t.Errorf("account a got %d requests, want 1", n)
	}
	rows := s.waitUsage(t, tn.keyID, 1)
	if r := rows[0]; r.Status != 499 || r.ErrorClass != "client_gone" || r.Attempts != 1 {
		t.Errorf("usage row %+v, want 499 client_gone after 1 attempt", r)
	}
	s.waitIdle(t, tn)
}

// A silent non-streaming upstream is failed over at responseHeaderTimeout (the watchdog's
// header timer under Yaegi), and a silent stream at firstTokenTimeout.
func TestSilentUpstreamUnderYaegi(t *testing.T) {
	s := getStack(t)
	h, err := plugin(t).newHandler(t.Context(), nextHandler(),
		s.pluginSettings(map[string]any{"responseHeaderTimeout": "500ms", "firstTokenTimeout": "500ms"}), "poolgate-silent")
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"model":"gpt-4o","input":"hi"}`, `{"model":"gpt-4o","input":"hi","stream":true}`} {
		tn := s.seed(t,
			accountSpec{name: "silent", priority: 1, script: &fakeupstream.Script{DelayMS: 5000}},
			accountSpec{name: "spare", priority: 2, script: &fakeupstream.Script{Text: "from the spare"}},
		)
		began := time.Now()
		rec := serve(t, h, "/v1/responses", bearer(tn.key), body)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "from the spare") {
			t.Fatalf("%s: got %d %s, want 200 from the spare", body, rec.Code, rec.Body)
		}
		if took := time.Since(began); took > 4*time.Second {
			t.Errorf("%s: took %s: the silent account was waited for", body, took)
		}
		rows := s.waitUsage(t, tn.keyID, 1)
		if r := rows[0]; r.Status != 200 || r.AccountID != tn.accounts[1].id || r.Attempts != 2 {
			t.Errorf("%s: usage row %+v, want status 200 on the spare after 2 attempts", body, r)
		}
		s.waitIdle(t, tn)
	}
}
