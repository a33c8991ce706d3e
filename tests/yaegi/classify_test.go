package yaegi

import (
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

// classifyProbe hands the interpreted classification (plugin/classify.go) to the test: the
// class of a real round trip through the guarded dialer, and the quota rule.
const classifyProbe = `package plugin

import (
	"context"
	"net/http"
	"time"
)

// ClassifyProbe is test scaffolding written by tests/yaegi/classify_test.go; not plugin code.
func ClassifyProbe() (func(string) string, func(int, string) bool) {
	roundTrip := func(url string) string {
		tr := &http.Transport{DialContext: guardedDialer(2*time.Second, true), TLSHandshakeTimeout: 2 * time.Second}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return transportClass(err)
		}
		resp.Body.Close()
		return ""
	}
	quota := func(status int, body string) bool { return quotaFault(status, []byte(body)) }
	return roundTrip, quota
}
`

func loadClassifyProbe(t *testing.T) (func(string) string, func(int, string) bool) {
	t.Helper()
	vs, err := interpretWithProbe(t.TempDir(), "zz_classifyprobe.go", classifyProbe, "ClassifyProbe")
	if err != nil {
		t.Fatal(err)
	}
	fn := vs[0]
	out := fn.Call([]reflect.Value{})
	return out[0].Interface().(func(string) string), out[1].Interface().(func(int, string) bool)
}

// resetAfterRead listens on 127.0.0.1 and resets every connection once it read the request.
func resetAfterRead(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = c.Read(buf)
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestClassificationUnderYaegi(t *testing.T) {
	roundTrip, quota := loadClassifyProbe(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer tlsSrv.Close()
	trips := []struct{ name, url, want string }{
		{"connection refused", closed, "dial"},
		{"untrusted certificate", tlsSrv.URL, "dial"},
		{"reset after the request was sent", resetAfterRead(t), "transport"},
	}
	for _, tt := range trips {
		t.Run(tt.name, func(t *testing.T) {
			if got := roundTrip(tt.url); got != tt.want {
				t.Fatalf("class %q under Yaegi, want %q", got, tt.want)
			}
		})
	}
	quotas := []struct {
		name   string
		status int
		body   string
		want   bool
	}{
		{"openai insufficient_quota", 429, `{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}`, true},
		{"anthropic credit balance", 400, `{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}`, true},
		{"rate limit", 429, `{"error":{"code":"rate_limit_exceeded"}}`, false},
		{"plain 400", 400, `{"error":{"type":"invalid_request_error"}}`, false},
	}
	for _, tt := range quotas {
		if got := quota(tt.status, tt.body); got != tt.want {
			t.Errorf("%s: quotaFault = %v under Yaegi, want %v", tt.name, got, tt.want)
		}
	}
}

// A 400 that says the account is out of credit is failed over, not relayed: the client
// gets the other account's answer, and the account is paused an hour with that reason.
func TestQuotaFailoverUnderYaegi(t *testing.T) {
	s := getStack(t)
	tn := s.seed(t,
		accountSpec{name: "broke", priority: 1, script: &fakeupstream.Script{Status: 400,
			Body: `{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}`}},
		accountSpec{name: "paid", priority: 2, script: &fakeupstream.Script{Text: "from the paid account"}},
	)
	broke := tn.accounts[0]
	rec := serve(t, s.handler, "/v1/responses", bearer(tn.key), `{"model":"gpt-4o","input":"hi"}`)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "from the paid account") {
		t.Fatalf("got %d %s, want 200 from the paid account", rec.Code, rec.Body)
	}
	var a struct {
		State struct {
			PausedUntil *time.Time `json:"paused_until"`
			PauseReason *string    `json:"pause_reason"`
		} `json:"state"`
	}
	s.admin.do(t, http.MethodGet, "/accounts/"+itoa(broke.id), nil, http.StatusOK, &a)
	if a.State.PausedUntil == nil || time.Until(*a.State.PausedUntil) < 50*time.Minute ||
		a.State.PauseReason == nil || *a.State.PauseReason != "insufficient_quota" {
		t.Fatalf("state %+v, want paused about an hour for insufficient_quota", a.State)
	}
	rows := s.waitUsage(t, tn.keyID, 1)
	if r := rows[0]; r.Status != 200 || r.Attempts != 2 {
		t.Errorf("usage row %+v, want status 200 after 2 attempts", r)
	}
	s.waitIdle(t, tn)
}
