package adminapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		path   string
		auth   string
		status int
	}{
		{"no header", "/api/v1/admin/users", "", http.StatusUnauthorized},
		{"wrong token", "/api/v1/admin/users", "Bearer not-the-token", http.StatusUnauthorized},
		{"token prefix only", "/api/v1/admin/users", "Bearer " + testToken[:10], http.StatusUnauthorized},
		{"token with suffix", "/api/v1/admin/users", "Bearer " + testToken + "x", http.StatusUnauthorized},
		{"basic scheme", "/api/v1/admin/users", "Basic " + testToken, http.StatusUnauthorized},
		{"bare token", "/api/v1/admin/users", testToken, http.StatusUnauthorized},
		{"empty bearer", "/api/v1/admin/users", "Bearer ", http.StatusUnauthorized},
		{"unknown admin path without token", "/api/v1/admin/nope", "", http.StatusUnauthorized},
		{"right token", "/api/v1/admin/users", "Bearer " + testToken, http.StatusOK},
		{"scheme is case-insensitive", "/api/v1/admin/groups", "bearer " + testToken, http.StatusOK},
		{"unknown admin path with token", "/api/v1/admin/nope", "Bearer " + testToken, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.callWithToken(http.MethodGet, tt.path, nil, tt.auth)
			if status != tt.status {
				t.Fatalf("status = %d %s, want %d", status, body, tt.status)
			}
			if status == http.StatusUnauthorized {
				var ae apiErr
				if err := json.Unmarshal(body, &ae); err != nil || ae.Error.Type != "authentication_error" || ae.Error.Message == "" {
					t.Errorf("401 body = %s, want an authentication_error", body)
				}
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.wantError(http.MethodPut, "/api/v1/admin/users", `{}`, http.StatusMethodNotAllowed, "invalid_request_error", "PUT")
	e.wantError(http.MethodDelete, "/api/v1/admin/users/1", nil, http.StatusMethodNotAllowed, "invalid_request_error", "DELETE")
	e.wantError(http.MethodGet, "/api/v1/admin/users/abc", nil, http.StatusNotFound, "not_found_error", "/api/v1/admin/users/abc")
	e.wantError(http.MethodGet, "/api/v1/admin/users/99999999999999999999", nil, http.StatusNotFound, "not_found_error", "")
}

func TestProbes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		status, body := e.callWithToken(http.MethodGet, path, nil, "")
		if status != http.StatusOK {
			t.Errorf("GET %s without auth = %d %s, want 200", path, status, body)
		}
	}
	var ready readyView
	e.mustCall(http.MethodGet, "/readyz", nil, http.StatusOK, &ready)
	if ready.Status != "ready" || ready.Checks["postgres"] != "ok" || ready.Checks["redis"] != "ok" {
		t.Errorf("readyz = %+v", ready)
	}

	// With Redis gone, readiness fails while liveness holds.
	if err := e.rdb.Close(); err != nil {
		t.Fatal(err)
	}
	status, body := e.callWithToken(http.MethodGet, "/readyz", nil, "")
	if err := json.Unmarshal(body, &ready); err != nil {
		t.Fatal(err)
	}
	if status != http.StatusServiceUnavailable || ready.Status != "not_ready" || ready.Checks["redis"] != "unavailable" || ready.Checks["postgres"] != "ok" {
		t.Errorf("readyz without redis = %d %s", status, body)
	}
	if strings.Contains(string(body), "closed") {
		t.Errorf("readyz echoes an internal error: %s", body)
	}
	if status, _ := e.callWithToken(http.MethodGet, "/healthz", nil, ""); status != http.StatusOK {
		t.Errorf("healthz without redis = %d, want 200", status)
	}
}

// TestInternalErrorIsGeneric checks that an unexpected failure becomes a generic 500 that
// does not echo the cause, and that the cause is logged once, on the request's line.
func TestInternalErrorIsGeneric(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.st.Close() // every query now fails with "closed pool"
	status, body := e.call(http.MethodGet, "/api/v1/admin/users", nil)
	var ae apiErr
	_ = json.Unmarshal(body, &ae)
	if status != http.StatusInternalServerError || ae.Error.Type != "api_error" || ae.Error.Message != "internal server error" {
		t.Errorf("GET /users on a closed pool = %d %s, want 500 api_error", status, body)
	}
	if strings.Contains(strings.ToLower(string(body)), "pool") {
		t.Errorf("500 body echoes internals: %s", body)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if m["route"] == "/api/v1/admin/users" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("log lines for the request = %v, want exactly one", lines)
	}
	l := lines[0]
	if l["level"] != "ERROR" || l["status"] != float64(500) || !strings.Contains(l["error"].(string), "pool") || l["request_id"] == "" {
		t.Errorf("log line = %v, want level ERROR, status 500, the pool error and a request id", l)
	}
}

func TestRequestLogLine(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	api := New(Options{AdminToken: "tok", Log: slog.New(slog.NewJSONHandler(logs, nil))})
	r := mux.NewRouter()
	api.Register(r)
	req := httptest.NewRequest(http.MethodGet, "/api/v1/admin/users/5", nil)
	req.Header.Set("Authorization", "Bearer wrong-token-value")
	req.Header.Set(RequestIDHeader, "req-abc.1")
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || rec.Header().Get(RequestIDHeader) != "req-abc.1" {
		t.Fatalf("status %d, request id %q", rec.Code, rec.Header().Get(RequestIDHeader))
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(logs.String()), &line); err != nil {
		t.Fatalf("want exactly one JSON log line, got %q: %v", logs.String(), err)
	}
	if line["request_id"] != "req-abc.1" || line["route"] != "/api/v1/admin/users/{id:[0-9]+}" || line["status"] != float64(401) {
		t.Errorf("log line = %v", line)
	}
	if strings.Contains(logs.String(), "wrong-token-value") {
		t.Error("the log contains the presented token")
	}
	// A request id that is not safe to log is replaced.
	req = httptest.NewRequest(http.MethodGet, "/api/v1/admin/users", nil)
	req.Header.Set(RequestIDHeader, "evil\nid")
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	if got := rec.Header().Get(RequestIDHeader); !strings.HasPrefix(got, "adm_") {
		t.Errorf("request id = %q, want a generated adm_ id", got)
	}
}
