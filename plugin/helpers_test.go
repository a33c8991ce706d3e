package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "test-plugin-secret"

// testClientKey has the gateway's key format (wellFormedKey); the contract stub admits any key.
const testClientKey = "sk-pg-0123456789abcdef0123456789abcdef0123456789abcdef"

// contractStub stands in for controlsvc as the network peer of the plugin's HTTP client: it
// implements the internal API contract of docs/design.md (admit, reports, renew) over
// in-memory accounts. It is not a substitute for controlsvc's storage; integration tests
// use the real controlsvc against PostgreSQL and Redis.
type contractStub struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	accounts []stubAccount
	admits   []admitRequest
	reports  []report
	posts    []int // size of every reports batch received, accepted or not
	renews   [][]lease
	grantSeq int

	// admitHook, when set, answers admit calls instead of the account logic (return true).
	admitHook func(w http.ResponseWriter, ar admitRequest) bool
	// failReports is how many reports POSTs still get a 503 before being accepted.
	failReports int
	// upstreamErrors records POST /internal/v1/upstream-error calls; upstreamErrorHook,
	// when set, answers them (else: 404, which the plugin treats as "no rule").
	upstreamErrors    []upstreamErrorRequest
	upstreamErrorHook func(w http.ResponseWriter, ue upstreamErrorRequest)
	// otherHook, when set, answers any other internal path (models, count-tokens) instead of
	// the 404 of a controlsvc without it (return true); otherCalls records those calls.
	otherHook  func(w http.ResponseWriter, path string, body []byte) bool
	otherCalls []string
}

type stubAccount struct {
	id            int64
	baseURL       string
	apiKey        string
	upstreamModel string
	// anthropic: an account of an anthropic group, granted as controlsvc grants them
	// (x-api-key, anthropic-version; Responses requests converted).
	anthropic bool
	// outputCap is the grant's max_output_tokens.
	outputCap int64
	// The group's header policy and the account's fixed headers, as the grant carries them.
	forwardBetas *string
	userAgent    string
	fixed        map[string]string
	// hedgeAfterMs is the grant's hedge_after_ms (hedge.go).
	hedgeAfterMs int64
}

func newContractStub(t *testing.T, accounts ...stubAccount) *contractStub {
	t.Helper()
	s := &contractStub{t: t, accounts: accounts}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		closeControl(s.srv.URL, testSecret)
		s.srv.Close()
	})
	return s
}

func (s *contractStub) URL() string { return s.srv.URL }

func (s *contractStub) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(headerSecret) != testSecret {
		http.Error(w, `{"error":{"type":"authentication_error","message":"bad secret"}}`, http.StatusUnauthorized)
		return
	}
	body, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case admitPath:
		var ar admitRequest
		if err := json.Unmarshal(body, &ar); err != nil {
			http.Error(w, "bad admit body", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.admits = append(s.admits, ar)
		hook := s.admitHook
		s.mu.Unlock()
		if hook != nil && hook(w, ar) {
			return
		}
		s.admit(w, ar)
	case reportsPath:
		var rb reportBatch
		if err := json.Unmarshal(body, &rb); err != nil {
			http.Error(w, "bad reports body", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.posts = append(s.posts, len(rb.Reports))
		if s.failReports > 0 {
			s.failReports--
			s.mu.Unlock()
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		s.reports = append(s.reports, rb.Reports...)
		s.mu.Unlock()
		fmt.Fprintf(w, `{"accepted":%d}`, len(rb.Reports))
	case renewPath:
		var rb renewBatch
		if err := json.Unmarshal(body, &rb); err != nil {
			http.Error(w, "bad renew body", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.renews = append(s.renews, rb.Leases)
		s.mu.Unlock()
		fmt.Fprintf(w, `{"renewed":%d}`, len(rb.Leases))
	case upstreamErrorPath:
		var ue upstreamErrorRequest
		if err := json.Unmarshal(body, &ue); err != nil {
			http.Error(w, "bad upstream-error body", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.upstreamErrors = append(s.upstreamErrors, ue)
		hook := s.upstreamErrorHook
		s.mu.Unlock()
		if hook == nil {
			http.NotFound(w, r)
			return
		}
		hook(w, ue)
	default:
		s.mu.Lock()
		s.otherCalls = append(s.otherCalls, r.URL.Path+" "+string(body))
		hook := s.otherHook
		s.mu.Unlock()
		if hook != nil && hook(w, r.URL.Path, body) {
			return
		}
		http.NotFound(w, r)
	}
}

// calls returns the recorded calls of other internal paths ("path body").
func (s *contractStub) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.otherCalls...)
}

// admit grants the first account not excluded, or refuses with no_account.
func (s *contractStub) admit(w http.ResponseWriter, ar admitRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	excluded := make(map[int64]bool)
	for _, id := range ar.Exclude {
		excluded[id] = true
	}
	for _, a := range s.accounts {
		if excluded[a.id] {
			continue
		}
		gid := ar.GrantID
		if gid == "" {
			s.grantSeq++
			gid = "g_" + strconv.Itoa(s.grantSeq)
		}
		g := grant{
			GrantID: gid, RequestID: ar.RequestID, UserID: 7, APIKeyID: 8, GroupID: 9,
			Platform: "openai", AccountID: a.id, BaseURL: a.baseURL,
			Headers:       map[string]string{"Authorization": "Bearer " + a.apiKey},
			UpstreamModel: a.upstreamModel, MaxOutputTokens: a.outputCap,
		}
		if a.anthropic {
			g.Platform = "anthropic"
			g.Headers = map[string]string{"x-api-key": a.apiKey, "anthropic-version": "2023-06-01"}
			if ar.Path == pathResponses || ar.Path == pathResponsesCompact {
				g.Convert = convertResponsesToMessages
			}
		}
		g.ForwardBetas, g.UserAgent = a.forwardBetas, a.userAgent
		g.HedgeAfterMs = a.hedgeAfterMs
		for k, v := range a.fixed {
			g.Headers[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(g)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(headerReject, rejectNoAccount)
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `{"error":{"type":"api_error","message":"Service temporarily unavailable"}}`)
}

func (s *contractStub) admitCalls() []admitRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]admitRequest(nil), s.admits...)
}

// waitReports waits until n reports arrived and returns them.
func (s *contractStub) waitReports(n int) []report {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := append([]report(nil), s.reports...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("got %d reports, want %d", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReport waits for exactly one report and checks that no second one follows.
func (s *contractStub) waitReport() report {
	s.t.Helper()
	got := s.waitReports(1)
	time.Sleep(120 * time.Millisecond) // more than two flush intervals
	s.mu.Lock()
	n := len(s.reports)
	s.mu.Unlock()
	if n != 1 {
		s.t.Fatalf("got %d reports, want exactly 1", n)
	}
	return got[0]
}

// upstreamReply scripts what the local upstream answers to one credential.
type upstreamReply struct {
	status  int
	headers map[string]string
	body    string
	// events are written one by one, flushed; gate, when set, is awaited before each event
	// after the first.
	events []string
	gate   chan struct{}
	// hold keeps the reply open until the request is cancelled (after the events).
	hold bool
}

type recordedRequest struct {
	path     string
	rawQuery string
	header   http.Header
	body     []byte
}

// testUpstream is a local AI upstream answering per credential (Authorization: Bearer).
type testUpstream struct {
	srv *httptest.Server

	mu        sync.Mutex
	replies   map[string]upstreamReply
	requests  []recordedRequest
	cancelled chan string // credentials whose request context ended while held
}

func newTestUpstream(t *testing.T) *testUpstream {
	u := &testUpstream{replies: make(map[string]upstreamReply), cancelled: make(chan string, 16)}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() { u.srv.Close() })
	return u
}

func (u *testUpstream) set(apiKey string, r upstreamReply) {
	u.mu.Lock()
	u.replies[apiKey] = r
	u.mu.Unlock()
}

func (u *testUpstream) recorded() []recordedRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recordedRequest(nil), u.requests...)
}

func (u *testUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if key == "" {
		key = r.Header.Get("X-Api-Key") // an Anthropic account
	}
	u.mu.Lock()
	u.requests = append(u.requests, recordedRequest{path: r.URL.Path, rawQuery: r.URL.RawQuery, header: r.Header.Clone(), body: body})
	reply, ok := u.replies[key]
	u.mu.Unlock()
	if !ok {
		http.Error(w, `{"error":{"message":"unknown credential"}}`, http.StatusUnauthorized)
		return
	}
	for k, v := range reply.headers {
		w.Header().Set(k, v)
	}
	if reply.events == nil {
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(reply.status)
		io.WriteString(w, reply.body)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(reply.status)
	for i, ev := range reply.events {
		if i > 0 && reply.gate != nil {
			select {
			case <-reply.gate:
			case <-r.Context().Done():
				u.cancelled <- key
				return
			}
		}
		io.WriteString(w, ev)
		w.(http.Flusher).Flush()
	}
	if reply.hold {
		<-r.Context().Done()
		u.cancelled <- key
	}
}

// okReply is a plain non-streaming Responses reply with usage.
func okReply(text string) upstreamReply {
	return upstreamReply{status: 200, body: `{"id":"resp_1","output_text":"` + text + `","usage":{"input_tokens":11,"output_tokens":5}}`}
}

// newTestPlugin builds a plugin instance against stub, with cfg adjustments applied.
func newTestPlugin(t *testing.T, stub *contractStub, adjust func(*Config)) *Poolgate {
	t.Helper()
	return newTestHandler(t, stub, adjust).(*Poolgate)
}

// newTestHandler returns New's handler as it is, the value Traefik gets.
func newTestHandler(t *testing.T, stub *contractStub, adjust func(*Config)) http.Handler {
	t.Helper()
	cfg := CreateConfig()
	cfg.ControlURL = stub.URL()
	cfg.PluginSecret = testSecret
	cfg.AllowPrivateUpstreams = true // the fake upstreams listen on 127.0.0.1
	if adjust != nil {
		adjust(cfg)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "next")
	})
	h, err := New(context.Background(), next, cfg, "test")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// do sends one request through h and returns the recorded response.
func do(h http.Handler, path, body string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if _, ok := header["Authorization"]; !ok && header["X-Api-Key"] == "" && header["X-Goog-Api-Key"] == "" {
		req.Header.Set("Authorization", "Bearer "+testClientKey)
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// errorOf decodes a client error body in either shape.
func errorOf(t *testing.T, body []byte) (shape, typ, msg string) {
	t.Helper()
	var v struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	shape = "openai"
	if v.Type == "error" {
		shape = "anthropic"
	}
	return shape, v.Error.Type, v.Error.Message
}
