package yaegi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/poolgate/poolgate/fakeupstream"
)

// countingBody counts reads and yields nothing: a client that announced a body and never
// sends it (a read fails at once rather than hang the test).
type countingBody struct{ reads atomic.Int64 }

func (b *countingBody) Read([]byte) (int, error) {
	b.reads.Add(1)
	return 0, io.ErrUnexpectedEOF
}

func (b *countingBody) Close() error { return nil }

// TestMalformedKeyRefusedBeforeBody runs the cheap key check under Yaegi: a malformed key is
// answered 401 in the path's error shape before a byte of the announced 256 MB body is read
// and without a call to controlsvc (the address is unreachable: a call would answer 503).
func TestMalformedKeyRefusedBeforeBody(t *testing.T) {
	h, err := plugin(t).newHandler(context.Background(), http.NotFoundHandler(),
		map[string]any{"pluginSecret": "s", "controlURL": "http://127.0.0.1:1"}, "preauth")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		header   map[string]string
		wantBody string
	}{
		{name: "made-up bearer", path: "/v1/responses", header: map[string]string{"Authorization": "Bearer sk-pg-not-a-key"},
			wantBody: `{"error":{"type":"authentication_error","message":"Invalid API key"}}`},
		{name: "upper-case hex", path: "/v1/chat/completions",
			header:   map[string]string{"Authorization": "Bearer sk-pg-0123456789ABCDEF0123456789abcdef0123456789abcdef"},
			wantBody: `{"error":{"type":"authentication_error","message":"Invalid API key"}}`},
		{name: "provider key on messages", path: "/v1/messages", header: map[string]string{"X-Api-Key": "sk-ant-api03-xyz"},
			wantBody: `{"type":"error","error":{"type":"authentication_error","message":"Invalid API key"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &countingBody{}
			req := httptest.NewRequest(http.MethodPost, tt.path, nil)
			req.Body = body
			req.ContentLength = 268435455
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized || strings.TrimSpace(rec.Body.String()) != tt.wantBody {
				t.Fatalf("got %d %s, want 401 %s", rec.Code, rec.Body, tt.wantBody)
			}
			if n := body.reads.Load(); n != 0 {
				t.Fatalf("the body was read %d times before the key was checked", n)
			}
		})
	}

	t.Run("well-formed key goes on to controlsvc", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(`{"model":"m"}`))
		req.Header.Set("Authorization", "Bearer sk-pg-0123456789abcdef0123456789abcdef0123456789abcdef")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("got %d %s, want the unreachable controlsvc's 503", rec.Code, rec.Body)
		}
	})
}

// TestClientCausedAuthErrorIsRelayed runs credential.go under Yaegi: an upstream 401 that does
// not blame the credential reaches the client as the upstream sent it, is not failed over,
// and leaves both accounts unmarked (their states, through the admin API, are clear).
func TestClientCausedAuthErrorIsRelayed(t *testing.T) {
	s := getStack(t)
	const upstreamBody = `{"error":{"message":"OpenAI-Organization header should match organization for API key","type":"invalid_request_error","param":null,"code":"mismatched_organization"}}`
	sc := &fakeupstream.Script{Status: 401, Body: upstreamBody}
	tn := s.seed(t, accountSpec{name: "a", priority: 1, script: sc}, accountSpec{name: "b", priority: 2, script: sc})
	rec := serve(t, s.handler, "/v1/responses", bearer(tn.key), `{"model":"gpt-4o","input":"hi"}`)
	if rec.Code != 401 || strings.TrimSpace(rec.Body.String()) != upstreamBody {
		t.Fatalf("got %d %s, want the upstream's 401 and body", rec.Code, rec.Body)
	}
	if n, m := len(s.upstreamRequests(tn.accounts[0].cred)), len(s.upstreamRequests(tn.accounts[1].cred)); n != 1 || m != 0 {
		t.Errorf("upstream requests %d and %d, want 1 and 0 (no failover)", n, m)
	}
	rows := s.waitUsage(t, tn.keyID, 1)
	if r := rows[0]; r.Status != 401 || r.Attempts != 1 {
		t.Errorf("usage row %+v, want status 401 after 1 attempt", r)
	}
	for _, a := range tn.accounts {
		var acc struct {
			State struct {
				PausedUntil *string `json:"paused_until"`
			} `json:"state"`
		}
		s.admin.do(t, http.MethodGet, "/accounts/"+itoa(a.id), nil, http.StatusOK, &acc)
		if acc.State.PausedUntil != nil {
			t.Errorf("account %d paused until %s by a client-caused 401", a.id, *acc.State.PausedUntil)
		}
	}
	s.waitIdle(t, tn)
}
