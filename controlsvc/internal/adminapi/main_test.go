package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/prices"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const testToken = "test-admin-token-0123456789"

// syncBuffer collects log output written from server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one admin API over HTTP on a fresh database and Redis.
type env struct {
	t     *testing.T
	srv   *httptest.Server
	api   *API
	st    *store.Store
	rdb   *redis.Client
	slots *slots.Slots
	logs  *syncBuffer
	// secrets must never appear in any response body; every call checks.
	secrets []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with a hook to add dependencies to the API's options.
func newEnvWith(t *testing.T, configure func(*Options, *redis.Client)) *env {
	t.Helper()
	st := storetest.Open(t)
	rdb := testenv.RedisClient(t, testenv.RedisURL(t))

	logs := &syncBuffer{}
	sl := slots.New(rdb, time.Minute)
	o := Options{
		Store:      st,
		Slots:      sl,
		AdminToken: testToken,
		Ready: []ReadyCheck{
			{Name: "postgres", Check: st.Pool.Ping},
			{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		},
		Log: slog.New(slog.NewJSONHandler(logs, nil)),
		// Like the test stacks: fixtures use http://127.0.0.1 (upstreams_test.go turns it off).
		AllowPrivateUpstreams: true,
		Routes:                routing.NewLog(rdb),
		Unpriced:              prices.NewUnpricedLog(rdb),
	}
	if configure != nil {
		configure(&o, rdb)
	}
	api := New(o)
	r := mux.NewRouter()
	api.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, api: api, st: st, rdb: rdb, slots: sl, logs: logs}
	t.Cleanup(func() {
		for _, s := range e.secrets {
			if strings.Contains(logs.String(), s) {
				t.Errorf("a secret (%.6s…) appears in the logs", s)
			}
		}
	})
	return e
}

// call sends an authenticated request; body is marshalled unless it is a string (sent
// raw). It returns the status and the body, after checking no secret leaked into it.
func (e *env) call(method, path string, body any) (int, []byte) {
	e.t.Helper()
	return e.callWithToken(method, path, body, "Bearer "+testToken)
}

func (e *env) callWithToken(method, path string, body any, auth string) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range e.secrets {
		if bytes.Contains(out, []byte(s)) {
			e.t.Errorf("%s %s: response body contains a secret (%.6s…): %s", method, path, s, out)
		}
	}
	if resp.StatusCode != http.StatusNoContent && resp.Header.Get("Content-Type") != "application/json" {
		e.t.Errorf("%s %s: Content-Type = %q, want application/json", method, path, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, out
}

// mustCall fails the test unless the status is want, and decodes the body into out.
func (e *env) mustCall(method, path string, body any, want int, out any) {
	e.t.Helper()
	status, raw := e.call(method, path, body)
	if status != want {
		e.t.Fatalf("%s %s = %d %s, want %d", method, path, status, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
}

type apiErr struct {
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// wantError checks an error response: status, type, and a message containing msg.
func (e *env) wantError(method, path string, body any, status int, typ, msg string) {
	e.t.Helper()
	got, raw := e.call(method, path, body)
	var ae apiErr
	if err := json.Unmarshal(raw, &ae); err != nil {
		e.t.Fatalf("%s %s: error body %s is not JSON: %v", method, path, raw, err)
	}
	if got != status || ae.Error.Type != typ || !strings.Contains(ae.Error.Message, msg) {
		e.t.Errorf("%s %s = %d %s, want %d %s containing %q", method, path, got, raw, status, typ, msg)
	}
}

// errorTypes are the error types of the statuses the error tables expect.
var errorTypes = map[int]string{
	http.StatusBadRequest: "invalid_request_error",
	http.StatusNotFound:   "not_found_error",
	http.StatusConflict:   "conflict_error",
}

// wantStatusError is wantError with the error type of status; a body of "" sends none.
func (e *env) wantStatusError(method, path string, body any, status int, msg string) {
	e.t.Helper()
	typ, ok := errorTypes[status]
	if !ok {
		e.t.Fatalf("no error type known for status %d", status)
	}
	if s, isString := body.(string); isString && s == "" {
		body = nil
	}
	e.wantError(method, path, body, status, typ, msg)
}

// Fixtures created through the API.

type idOnly struct {
	ID int64 `json:"id"`
}

func (e *env) createUser(name string) int64 {
	e.t.Helper()
	var u idOnly
	e.mustCall(http.MethodPost, "/api/v1/admin/users", map[string]any{"name": name, "balance_usd": 10}, http.StatusCreated, &u)
	return u.ID
}

func (e *env) createGroup(name, platform string) int64 {
	e.t.Helper()
	var g idOnly
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", map[string]any{"name": name, "platform": platform}, http.StatusCreated, &g)
	return g.ID
}

func (e *env) createAccount(name string, groupIDs ...int64) int64 {
	e.t.Helper()
	secret := "sk-upstream-" + name + "-zzSECRETzz"
	e.secrets = append(e.secrets, secret)
	var a idOnly
	e.mustCall(http.MethodPost, "/api/v1/admin/accounts", map[string]any{
		"name": name, "platform": "openai", "base_url": "https://api.openai.com",
		"credential": map[string]string{"api_key": secret}, "group_ids": groupIDs,
	}, http.StatusCreated, &a)
	return a.ID
}

// listBody is what the tests read of an admin list page: its items.
type listBody[T any] struct {
	Items []T `json:"items"`
}
