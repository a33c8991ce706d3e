package plugin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// panicOnce panics on its n-th Write, on WriteHeader when n is 0, or (n < 0) on the write
// after one that ended inside an event.
type panicOnce struct {
	*httptest.ResponseRecorder
	n, writes int
	panicked  bool
	partial   bool
}

func (w *panicOnce) WriteHeader(code int) {
	if w.n == 0 && !w.panicked {
		w.panicked = true
		panic("relay broke")
	}
	w.ResponseRecorder.WriteHeader(code)
}

func (w *panicOnce) Write(p []byte) (int, error) {
	w.writes++
	if (w.n > 0 && w.writes == w.n) || (w.n < 0 && w.partial) {
		panic("relay broke")
	}
	w.partial = !strings.HasSuffix(string(p), "\n\n")
	return w.ResponseRecorder.Write(p)
}

func TestPanicAfterCommit(t *testing.T) {
	t.Parallel()
	first := "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n"
	tests := []struct {
		name    string
		events  []string
		panicAt int // the client write that panics; 0: the status line (after the commit point)
		gap     time.Duration
		wantCut bool
	}{
		{name: "at an event boundary", events: []string{first}, panicAt: 0, gap: 100 * time.Millisecond},
		{name: "inside the client write", events: []string{first, first}, panicAt: 2, gap: 100 * time.Millisecond,
			wantCut: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newTestUpstream(t)
			gate := make(chan struct{})
			stop := make(chan struct{})
			defer close(stop)
			go func() { // one event per read: each reaches the client in a write of its own
				for {
					select {
					case <-stop:
						return
					case <-time.After(tt.gap):
					}
					select {
					case gate <- struct{}{}:
					case <-stop:
						return
					}
				}
			}()
			up.set("up-1", upstreamReply{status: 200, events: tt.events, gate: gate, hold: true})
			stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
			p := newTestPlugin(t, stub, nil)
			w := &panicOnce{ResponseRecorder: httptest.NewRecorder(), n: tt.panicAt}
			req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(`{"model":"m","stream":true}`))
			req.Header.Set("Authorization", "Bearer "+testClientKey)
			var got interface{}
			func() {
				defer func() { got = recover() }()
				p.ServeHTTP(w, req)
			}()
			body := w.Body.String()
			if tt.wantCut {
				if got != http.ErrAbortHandler {
					t.Fatalf("recovered %v, want the connection cut (http.ErrAbortHandler)", got)
				}
				if strings.Contains(body, "response.failed") {
					t.Fatalf("error frame written inside an event: ...%q", body[len(body)-200:])
				}
			} else {
				if got != nil {
					t.Fatalf("ServeHTTP panicked: %v", got)
				}
				if !strings.HasPrefix(body, "event: response.failed\n") || !isTerminalEvent([]byte(body)) ||
					eventBoundary([]byte(body)) != len(body) {
					t.Fatalf("body = %q, want exactly the terminal response.failed event", body)
				}
			}
			if r := stub.waitReport(); r.ErrorClass != classInternal {
				t.Fatalf("report = %+v", r)
			}
		})
	}
}

// The rule of panic.go on the exchange's state: the terminal error event only where the
// client's bytes end at an event boundary, else the connection is cut.
func TestEndAfterPanicRule(t *testing.T) {
	t.Parallel()
	stub := newContractStub(t)
	p := newTestPlugin(t, stub, nil)
	tests := []struct {
		name          string
		contentType   string
		midEvent      bool
		keepAliveOnly bool
		wantCut       bool
	}{
		{name: "event boundary", contentType: "text/event-stream"},
		{name: "inside an event longer than maxCarry", contentType: "text/event-stream", midEvent: true, wantCut: true},
		{name: "plain body", contentType: "application/json", wantCut: true},
		{name: "keep-alives only", contentType: "text/event-stream", keepAliveOnly: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
			x := newExchange(p, rec, req, pathChat)
			rec.Header().Set("Content-Type", tt.contentType)
			x.written, x.midEvent, x.keepAliveOnly = true, tt.midEvent, tt.keepAliveOnly
			cut := endAfterPanic(x)
			x.stall.close()
			if cut != tt.wantCut {
				t.Fatalf("cut = %v, want %v", cut, tt.wantCut)
			}
			body := rec.Body.String()
			if tt.wantCut != (body == "") {
				t.Fatalf("body %q (cut %v)", body, cut)
			}
			if !tt.wantCut && (!isTerminalEvent([]byte(body)) || eventBoundary([]byte(body)) != len(body)) {
				t.Fatalf("body %q, want one terminal error event", body)
			}
		})
	}
}
