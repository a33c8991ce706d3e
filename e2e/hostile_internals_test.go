package e2e

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/stack"
)

// TestInternalsKeptInternal: through Traefik the admin API answers on the admin entrypoint
// only, and neither entrypoint reaches controlsvc's internal API or /metrics; on controlsvc
// itself each listener serves its own routes only. Every probe carries the real admin
// token and plugin secret, so a 404 means "not routed", not "not authorised".
func TestInternalsKeptInternal(t *testing.T) {
	type probe struct {
		name, method, url string
		header            string // Authorization or X-Poolgate-Secret value
		secret            bool   // header is the plugin secret
		want              int
	}
	admin := "Bearer " + gw.AdminToken
	probes := []probe{
		{"admin API on the admin entrypoint", "GET", gw.AdminURL + "/api/v1/admin/users", admin, false, 200},
		{"admin API on the gateway entrypoint", "GET", gw.GatewayURL + "/api/v1/admin/users", admin, false, 404},
		{"metrics on the gateway entrypoint", "GET", gw.GatewayURL + "/metrics", admin, false, 404},
		{"metrics on the admin entrypoint", "GET", gw.AdminURL + "/metrics", admin, false, 404},
		{"internal API on the gateway entrypoint", "POST", gw.GatewayURL + "/internal/v1/admit", gw.PluginSecret, true, 404},
		{"internal API on the admin entrypoint", "POST", gw.AdminURL + "/internal/v1/admit", gw.PluginSecret, true, 404},
		{"AI route on the admin entrypoint", "POST", gw.AdminURL + "/v1/responses", "Bearer sk-pg-x", false, 404},
		{"admin API on the internal listener", "GET", gw.ControlURL + "/api/v1/admin/users", admin, false, 404},
		{"metrics on the internal listener", "GET", gw.ControlURL + "/metrics", admin, false, 404},
		{"internal API on the admin listener", "POST", gw.ControlAdminURL + "/internal/v1/admit", gw.PluginSecret, true, 404},
		{"metrics on the admin listener", "GET", gw.ControlAdminURL + "/metrics", admin, false, 404},
		{"admin API on the metrics listener", "GET", gw.MetricsURL + "/api/v1/admin/users", admin, false, 404},
		{"metrics on the metrics listener", "GET", gw.MetricsURL + "/metrics", "", false, 200},
		{"an overlong admin token", "GET", gw.AdminURL + "/api/v1/admin/users", "Bearer " + strings.Repeat("a", 1<<20), false, 401},
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			req, err := http.NewRequest(p.method, p.url, strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if p.secret {
				req.Header.Set("X-Poolgate-Secret", p.header)
			} else if p.header != "" {
				req.Header.Set("Authorization", p.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			// An overlong header may also be refused by the server itself (431).
			if resp.StatusCode != p.want && !(p.want == 401 && resp.StatusCode == 431) {
				t.Fatalf("%s %s = %d %q, want %d", p.method, p.url, resp.StatusCode, body, p.want)
			}
		})
	}
}

// TestTraefikPerIPLimits: the shipped per-address flood guards (traefik-dynamic.yml) answer
// 429 once a client address exceeds its rate, on the AI routes and on the admin API. A
// stack of its own runs with a rate of 1/s and a burst of 2.
func TestTraefikPerIPLimits(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := stack.TestOptions(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.TraefikEnv = []string{"POOLGATE_IP_RATE=1", "POOLGATE_IP_BURST=2", "POOLGATE_ADMIN_RATE=1", "POOLGATE_ADMIN_BURST=2"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	tests := []struct {
		name, method, url string
		hdr               map[string]string
		pass              int // the answer when not limited
	}{
		{"ai route", http.MethodPost, s.GatewayURL + "/v1/responses", nil, http.StatusUnauthorized},
		{"admin api", http.MethodGet, s.AdminURL + "/api/v1/admin/users", map[string]string{"Authorization": "Bearer " + s.AdminToken}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counts := map[int]int{}
			for i := 0; i < 10; i++ {
				req, _ := http.NewRequest(tt.method, tt.url, strings.NewReader(`{}`))
				for k, v := range tt.hdr {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				counts[resp.StatusCode]++
			}
			if counts[http.StatusTooManyRequests] == 0 || counts[tt.pass] == 0 || counts[tt.pass]+counts[http.StatusTooManyRequests] != 10 {
				t.Errorf("statuses %v, want some %d and some 429 only", counts, tt.pass)
			}
		})
	}
}
