package plugin

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// endlessUpstream streams large Responses events until the request is cancelled, which it
// reports on cancelled.
func endlessUpstream(t *testing.T) (*httptest.Server, chan struct{}) {
	cancelled := make(chan struct{}, 1)
	delta := `event: response.output_text.delta` + "\n" + `data: {"type":"response.output_text.delta","delta":"` +
		strings.Repeat("x", 16<<10) + `"}` + "\n\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for {
			if _, err := w.Write([]byte(delta)); err != nil || r.Context().Err() != nil {
				break
			}
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
		cancelled <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return srv, cancelled
}

// noDeadlineWriter hides every method but Header, Write, WriteHeader and Flush, as Traefik's
// recovery middleware does: http.ResponseController cannot set a write deadline through it.
type noDeadlineWriter struct{ rw http.ResponseWriter }

func (w noDeadlineWriter) Header() http.Header         { return w.rw.Header() }
func (w noDeadlineWriter) Write(p []byte) (int, error) { return w.rw.Write(p) }
func (w noDeadlineWriter) WriteHeader(code int)        { w.rw.WriteHeader(code) }
func (w noDeadlineWriter) Flush()                      { w.rw.(http.Flusher).Flush() }

// stuckClient opens a streaming request on a raw connection with a tiny receive buffer and
// never reads the answer.
func stuckClient(t *testing.T, gatewayURL string) *net.TCPConn {
	t.Helper()
	addr := strings.TrimPrefix(gatewayURL, "http://")
	raddr, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTCP("tcp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadBuffer(1024)
	body := `{"model":"m","stream":true}`
	fmt.Fprintf(conn, "POST /v1/responses HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+testClientKey+"\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return conn
}

// leaseHeld reports whether the plugin's renewer would renew grantID now.
func leaseHeld(p *Poolgate, grantID string) bool {
	for _, l := range snapshot(p.control.leases, time.Now()) {
		if l.GrantID == grantID {
			return true
		}
	}
	return false
}

func TestStalledClientLosesLeaseAndUpstream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// wrap is the writer the plugin gets; traefikLike ones cannot interrupt the write.
		wrap        func(http.ResponseWriter) http.ResponseWriter
		traefikLike bool
	}{
		{name: "plain net/http writer", wrap: func(w http.ResponseWriter) http.ResponseWriter { return w }},
		{name: "writer without SetWriteDeadline", wrap: func(w http.ResponseWriter) http.ResponseWriter { return noDeadlineWriter{w} },
			traefikLike: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up, cancelled := endlessUpstream(t)
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.URL, apiKey: "up-1"})
			p := newTestPlugin(t, stub, func(c *Config) { c.WriteStallTimeout = "300ms" })
			gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				p.ServeHTTP(tt.wrap(w), r)
			}))
			t.Cleanup(gw.Close)
			conn := stuckClient(t, gw.URL)

			// The grant's lease is held while the stream flows, then dropped once a write
			// has been blocked for writeStallTimeout, and the upstream is cancelled.
			waitFor(t, func() bool { return leaseHeld(p, "g_1") })
			select {
			case <-cancelled:
			case <-time.After(10 * time.Second):
				t.Fatal("upstream not cancelled after the client stalled")
			}
			if leaseHeld(p, "g_1") {
				t.Fatal("the stalled request's lease is still renewed")
			}
			if tt.traefikLike {
				// The write stays blocked until the connection goes; then the report comes.
				time.Sleep(100 * time.Millisecond)
				stub.mu.Lock()
				n := len(stub.reports)
				stub.mu.Unlock()
				if n != 0 {
					t.Fatalf("%d reports while the write is still blocked", n)
				}
				conn.Close()
			}
			r := stub.waitReport()
			if r.Status != 499 || r.ErrorClass != classClientGone {
				t.Fatalf("report = %+v", r)
			}
		})
	}
}

// blockingWriter blocks its blockAt-th Write and every later one until release is closed.
type blockingWriter struct {
	*httptest.ResponseRecorder
	mu      sync.Mutex
	writes  int
	blockAt int // the write that blocks (1-based)
	release chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes++
	n := w.writes
	w.mu.Unlock()
	if n >= w.blockAt {
		<-w.release
	}
	return w.ResponseRecorder.Write(p)
}

// A keep-alive ping blocked for writeStallTimeout ends the admit call: the request keeps no
// lease alive while its ping cannot be written.
func TestStalledKeepAliveEndsTheAdmitCall(t *testing.T) {
	t.Parallel()
	gaveUp := make(chan struct{}, 1)
	stub := newContractStub(t, stubAccount{id: 1, baseURL: "http://127.0.0.1:1", apiKey: "up-1"})
	// A controlsvc that makes the request wait until the plugin gives up on the call.
	wait := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // net/http notices a closed connection only after the body
		<-r.Context().Done()
		gaveUp <- struct{}{}
	}))
	t.Cleanup(wait.Close)
	t.Cleanup(func() { closeControl(wait.URL, testSecret) })
	p := newTestPlugin(t, stub, func(c *Config) {
		c.ControlURL = wait.URL
		c.PingInterval = "20ms"
		c.WriteStallTimeout = "200ms"
	})
	w := &blockingWriter{ResponseRecorder: httptest.NewRecorder(), blockAt: 2, release: make(chan struct{})}
	req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(`{"model":"m","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+testClientKey)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.ServeHTTP(w, req)
	}()
	select {
	case <-gaveUp:
	case <-time.After(5 * time.Second):
		t.Fatal("the admit call went on while the ping was blocked")
	}
	close(w.release)
	<-done
	if strings.Contains(w.Body.String(), "response.") {
		t.Fatalf("a stalled client got more than keep-alives: %q", w.Body.String())
	}
}

func TestLeaseNotRenewedPastItsCap(t *testing.T) {
	t.Parallel()
	stub := newContractStub(t)
	rn := newRenewer(newControlClient(stub.URL(), testSecret), 20*time.Millisecond)
	defer rn.close()
	register(rn, lease{GrantID: "g_capped", UserID: 1, AccountID: 2}, time.Now().Add(150*time.Millisecond))
	register(rn, lease{GrantID: "g_open", UserID: 1, AccountID: 2}, time.Time{})
	time.Sleep(400 * time.Millisecond)
	stub.mu.Lock()
	renews := append([][]lease(nil), stub.renews...)
	stub.mu.Unlock()
	if len(renews) < 4 {
		t.Fatalf("%d renew calls", len(renews))
	}
	for _, l := range renews[len(renews)-2] {
		if l.GrantID == "g_capped" {
			t.Fatalf("lease renewed past its cap: %+v", renews[len(renews)-2])
		}
	}
	first := renews[0]
	if len(first) != 2 {
		t.Fatalf("first renew call = %+v, want both leases", first)
	}

	// The exchange's cap: start + requestTimeout + drainTimeout + 60 s.
	p := &Poolgate{requestLimit: 30 * time.Minute, drain: 30 * time.Second}
	x := &exchange{p: p, start: time.Unix(1000, 0)}
	if got, want := leaseCap(x), time.Unix(1000, 0).Add(30*time.Minute+90*time.Second); !got.Equal(want) {
		t.Fatalf("leaseCap = %v, want %v", got, want)
	}
}
