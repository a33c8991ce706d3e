package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestQuotaFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   bool
	}{
		{"openai 429 insufficient_quota", 429, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`, true},
		{"openai 429 rate limit", 429, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`, false},
		{"anthropic 400 credit balance", 400, `{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}`, true},
		{"anthropic 400 billing_error", 400, `{"type":"error","error":{"type":"billing_error","message":"billing"}}`, true},
		{"402 billing", 402, `{"error":{"type":"billing_error"}}`, true},
		{"403 quota", 403, `{"error":{"code":"insufficient_quota"}}`, true},
		{"upper case", 429, `{"error":{"code":"INSUFFICIENT_QUOTA"}}`, true},
		{"plain 400", 400, `{"error":{"message":"Invalid value for 'input'","type":"invalid_request_error"}}`, false},
		{"500 naming quota", 500, `insufficient_quota`, false},
		{"empty", 429, ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := quotaFault(tt.status, []byte(tt.body)); got != tt.want {
				t.Fatalf("quotaFault(%d, %s) = %v, want %v", tt.status, tt.body, got, tt.want)
			}
		})
	}
}

func TestIsDialFailure(t *testing.T) {
	t.Parallel()
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"guarded dial", dialFailed(opErr), true},
		{"guarded dial, wrapped again", fmt.Errorf("round trip: %w", dialFailed(opErr)), true},
		{"tls alert", errors.New("remote error: tls: handshake failure"), true},
		{"certificate", errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority"), true},
		{"handshake timeout", errors.New("net/http: TLS handshake timeout"), true},
		{"reset after send", errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"), false},
		{"eof", errors.New("EOF"), false},
		{"cancelled dial", dialFailed(context.Canceled), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := isDialFailure(tt.err); got != tt.want {
				t.Fatalf("isDialFailure(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// classifyRoundTrip sends one request to url through a transport with the guarded dialer, as
// the plugin's (forward.go), and returns the error class of its failure ("" = answered).
func classifyRoundTrip(url string) string {
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

// classifyTargets starts the upstreams of the classification cases: a closed port, a TLS
// server whose certificate is not trusted, and one that resets every connection once it
// has read the request.
func classifyTargets(t testing.TB) (closed, untrusted, reset string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed = "http://" + ln.Addr().String()
	ln.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(tlsSrv.Close)
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rl.Close() })
	go func() {
		for {
			c, err := rl.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = c.Read(buf)
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	return closed, tlsSrv.URL, "http://" + rl.Addr().String()
}

func TestTransportClassOfRealFailures(t *testing.T) {
	t.Parallel()
	closed, untrusted, reset := classifyTargets(t)
	tests := []struct{ name, url, want string }{
		{"connection refused", closed, "dial"},
		{"untrusted certificate", untrusted, "dial"},
		{"reset after the request was sent", reset, "transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := classifyRoundTrip(tt.url); got != tt.want {
				t.Fatalf("class %q, want %q", got, tt.want)
			}
		})
	}
}
