package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
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
