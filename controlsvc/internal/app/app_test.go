package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/config"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func testConfig(t *testing.T) config.Config {
	t.Helper()
	return config.Config{
		DatabaseURL:  testenv.PostgresURL(t),
		RedisURL:     testenv.RedisURL(t),
		AdminToken:   "admin-tok",
		PluginSecret: "plugin-sec",
		Listen:       config.DefaultListen,
		LeaseTTL:     config.DefaultLeaseTTL,
		LogLevel:     "error",
		Wait:         config.DefaultWaitQueues(),

		CredentialKeys: storetest.Keys(t),
	}
}

func do(t *testing.T, srv *httptest.Server, method, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAppServesAllRoutes(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})

	admin := map[string]string{"Authorization": "Bearer admin-tok"}
	plugin := map[string]string{"X-Poolgate-Secret": "plugin-sec"}
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     map[string]string
		wantStatus int
		wantBody   string
	}{
		{"liveness", "GET", "/healthz", "", nil, 200, `"ok"`},
		{"readiness", "GET", "/readyz", "", nil, 200, `"ready"`},
		{"admin without token", "GET", "/api/v1/admin/users", "", nil, 401, "authentication_error"},
		{"admin with plugin secret", "GET", "/api/v1/admin/users", "", map[string]string{"Authorization": "Bearer plugin-sec"}, 401, "authentication_error"},
		{"admin create user", "POST", "/api/v1/admin/users", `{"name":"alice","balance_usd":3}`, admin, 201, `"balance_usd":3`},
		{"admin concurrency", "GET", "/api/v1/admin/concurrency", "", admin, 200, `"users":[{"user_id":1,"active":0,"waiting":0}]`},
		{"internal without secret", "POST", "/internal/v1/admit", `{}`, nil, 401, ""},
		{"internal with admin token", "POST", "/internal/v1/renew", `{"leases":[]}`, admin, 401, ""},
		{"internal renew with secret", "POST", "/internal/v1/renew", `{"leases":[]}`, plugin, 200, `"renewed":0`},
	}
	for _, tt := range tests { // sequential: the concurrency case needs the created user
		status, body := do(t, srv, tt.method, tt.path, tt.body, tt.header)
		if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: %s %s = %d %s, want %d containing %q", tt.name, tt.method, tt.path, status, body, tt.wantStatus, tt.wantBody)
		}
	}

	// A second instance on the same database starts cleanly: migrations are idempotent.
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("second New on a migrated database: %v", err)
	}
	b.Close()
}

func TestNewFailsClearly(t *testing.T) {
	t.Parallel()
	good := testConfig(t)
	tests := []struct {
		name   string
		mutate func(*config.Config)
		want   string
	}{
		{"postgres unreachable", func(c *config.Config) {
			c.DatabaseURL = "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"
		}, "database"},
		{"redis unreachable", func(c *config.Config) { c.RedisURL = "redis://:hunter2@127.0.0.1:1/0" }, "redis"},
		{"bad log level", func(c *config.Config) { c.LogLevel = "loud" }, config.EnvLogLevel},
		{"no credential key", func(c *config.Config) { c.CredentialKeys = nil }, config.EnvCredentialKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mutate(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			a, err := New(ctx, cfg)
			if err == nil {
				a.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q, want it to mention %q and not the password", err, tt.want)
			}
		})
	}
}
