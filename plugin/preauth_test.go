package plugin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestWellFormedKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give string
		want bool
	}{
		{name: "gateway key", give: testClientKey, want: true},
		{name: "empty", give: "", want: false},
		{name: "prefix only", give: "sk-pg-", want: false},
		{name: "one digit short", give: testClientKey[:len(testClientKey)-1], want: false},
		{name: "one digit long", give: testClientKey + "0", want: false},
		{name: "upper-case hex", give: strings.ToUpper(testClientKey[:6]) + testClientKey[6:], want: false},
		{name: "upper-case digits", give: "sk-pg-0123456789ABCDEF0123456789abcdef0123456789abcdef", want: false},
		{name: "not hex", give: "sk-pg-0123456789abcdef0123456789abcdef0123456789abcdeg", want: false},
		{name: "provider key", give: "sk-proj-0123456789abcdef0123456789abcdef0123456789ab", want: false},
		{name: "other prefix", give: "sk-xx-0123456789abcdef0123456789abcdef0123456789abcdef", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wellFormedKey(tt.give); got != tt.want {
				t.Fatalf("wellFormedKey(%q) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}

// watchedBody counts reads; it never yields a byte, like a client that announced a body and
// never sends it (a read fails at once rather than hang the test).
type watchedBody struct{ reads atomic.Int64 }

func (b *watchedBody) Read([]byte) (int, error) {
	b.reads.Add(1)
	return 0, io.ErrUnexpectedEOF
}

func (b *watchedBody) Close() error { return nil }

// TestMalformedKeyRefusedBeforeBody: a missing or malformed key is answered 401 in the
// path's error shape without a single read of the body and without an admit call, whatever
// Content-Length announces.
func TestMalformedKeyRefusedBeforeBody(t *testing.T) {
	t.Parallel()
	stub := newContractStub(t)
	p := newTestPlugin(t, stub, nil)
	tests := []struct {
		name      string
		path      string
		header    map[string]string
		wantShape string
	}{
		{name: "made-up bearer", path: "/v1/responses", header: map[string]string{"Authorization": "Bearer sk-pg-not-a-key"}, wantShape: "openai"},
		{name: "provider key", path: "/v1/chat/completions", header: map[string]string{"Authorization": "Bearer sk-proj-abc"}, wantShape: "openai"},
		{name: "malformed x-api-key on messages", path: "/v1/messages", header: map[string]string{"X-Api-Key": "sk-ant-api03-xyz"}, wantShape: "anthropic"},
		{name: "no key on messages", path: "/v1/messages", header: map[string]string{}, wantShape: "anthropic"},
		{name: "key too long", path: "/v1/responses", header: map[string]string{"Authorization": "Bearer " + testClientKey + strings.Repeat("a", 4096)}, wantShape: "openai"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &watchedBody{}
			req := httptest.NewRequest(http.MethodPost, tt.path, nil)
			req.Body = body
			req.ContentLength = 268435455
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d (%s), want 401", rec.Code, rec.Body.String())
			}
			shape, typ, msg := errorOf(t, rec.Body.Bytes())
			if shape != tt.wantShape || typ != typeAuthentication || msg != msgInvalidAPIKey {
				t.Fatalf("error = %s %q %q, want %s authentication_error", shape, typ, msg, tt.wantShape)
			}
			if n := body.reads.Load(); n != 0 {
				t.Fatalf("the body was read %d times before the key was checked", n)
			}
			if n := len(stub.admitCalls()); n != 0 {
				t.Fatalf("%d admit calls for a malformed key", n)
			}
		})
	}
}

// TestReadBodyDoesNotTrustContentLength: the buffer grows with the bytes that arrive; an
// announced length below the limit sizes nothing.
func TestReadBodyDoesNotTrustContentLength(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(`{"model":"m"}`))
	req.ContentLength = 60 << 20
	got, e := readBody(req, 64<<20)
	if e != nil || string(got) != `{"model":"m"}` {
		t.Fatalf("readBody() = %q, %+v", got, e)
	}
	if cap(got) > 2*bodyReadChunk {
		t.Fatalf("buffer capacity %d for a 13-byte body announced as 60 MiB", cap(got))
	}
}

// TestReadBodySmallBodySmallBuffer: a body lives as long as its request, a stream's whole
// life (docs/design.md, "Memory per open stream"), so a small body with its length
// announced holds a small buffer; an unknown length starts at bodyReadChunk.
func TestReadBodySmallBodySmallBuffer(t *testing.T) {
	t.Parallel()
	const body = `{"model":"m","input":"hi","stream":true}`
	big := strings.Repeat("x", 3*bodyReadChunk)
	tests := []struct {
		name          string
		body          string
		contentLength int64
		maxCap        int
	}{
		{"announced small", body, int64(len(body)), len(body) + 1024},
		{"announced at the chunk", big[:bodyReadChunk], bodyReadChunk, 3 * bodyReadChunk},
		{"unknown length", body, -1, bodyReadChunk},
		{"large, announced", big, int64(len(big)), 4 * len(big)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(tt.body))
			req.ContentLength = tt.contentLength
			got, e := readBody(req, 64<<20)
			if e != nil || string(got) != tt.body {
				t.Fatalf("readBody() = %.40q (%d bytes), %+v", got, len(got), e)
			}
			if cap(got) > tt.maxCap {
				t.Fatalf("buffer capacity %d for a %d-byte body, want at most %d", cap(got), len(got), tt.maxCap)
			}
		})
	}
}
