package adminapi

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestRefusedUpstreamAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		addr    string
		refused bool
	}{
		{"loopback", "127.0.0.1", true},
		{"loopback range", "127.9.9.9", true},
		{"this network", "0.0.0.7", true},
		{"private 10", "10.0.0.1", true},
		{"private 172.16", "172.20.1.1", true},
		{"public 172.32", "172.32.0.1", false},
		{"private 192.168", "192.168.0.1", true},
		{"link-local", "169.254.169.254", true},
		{"cgnat", "100.100.1.1", true},
		{"public 100.128", "100.128.0.1", false},
		{"public", "8.8.8.8", false},
		{"v6 loopback", "::1", true},
		{"v6 unspecified", "::", true},
		{"v6 ula", "fd00::1", true},
		{"v6 link-local", "fe80::1", true},
		{"v6 mapped loopback", "::ffff:127.0.0.1", true},
		{"v6 mapped public", "::ffff:8.8.8.8", false},
		{"v6 public", "2606:4700::1111", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := refusedUpstreamAddr(netip.MustParseAddr(tt.addr)); got != tt.refused {
				t.Fatalf("refusedUpstreamAddr(%s) = %v, want %v", tt.addr, got, tt.refused)
			}
		})
	}
}

// TestAccountBaseURLAddresses: with POOLGATE_ALLOW_PRIVATE_UPSTREAMS off, create and
// patch refuse http and loopback/link-local/private hosts with a 400 in the admin API's
// format; with it on they are accepted.
func TestAccountBaseURLAddresses(t *testing.T) {
	t.Parallel()
	strict := newEnvWith(t, func(o *Options, _ *redis.Client) { o.AllowPrivateUpstreams = false })
	open := newEnv(t) // AllowPrivateUpstreams on, like the test stacks
	const private = "allowed only with POOLGATE_ALLOW_PRIVATE_UPSTREAMS=1"
	tests := []struct {
		name    string
		baseURL string
		msg     string // "" : accepted with the flag off
	}{
		{"public https", "https://api.openai.com/v1", ""},
		{"public literal", "https://8.8.8.8", ""},
		{"public v6 literal", "https://[2606:4700::1111]:8443", ""},
		{"http", "http://api.openai.com", "base_url must use https"},
		{"loopback", "https://127.0.0.1:8081", "is a loopback, link-local or private address (" + private},
		{"loopback upper scheme http", "HTTP://127.0.0.1", "base_url must use https"},
		{"private 10", "https://10.1.2.3", "private address"},
		{"private 172.16", "https://172.16.5.4", "private address"},
		{"private 192.168", "https://192.168.1.1", "private address"},
		{"metadata", "https://169.254.169.254/latest", "private address"},
		{"cgnat", "https://100.64.0.1", "private address"},
		{"unspecified", "https://0.0.0.0", "private address"},
		{"v6 loopback", "https://[::1]:443", "private address"},
		{"v6 ula", "https://[fc00::1]", "private address"},
		{"v6 link-local zone", "https://[fe80::1%25eth0]", "private address"},
		{"v6 mapped", "https://[::ffff:127.0.0.1]", "private address"},
		{"v6 unspecified", "https://[::]", "private address"},
		{"localhost", "https://localhost:8443", "is the local host (" + private},
		{"localhost trailing dot", "https://LOCALHOST.", "is the local host"},
		{"sub localhost", "https://api.localhost", "is the local host"},
		{"short loopback", "https://127.1", "is not a DNS name or a standard IP address"},
		{"decimal loopback", "https://2130706433", "is not a DNS name"},
		{"hex loopback", "https://0x7f.0.0.1", "is not a DNS name"},
	}
	oa := strict.createGroup("oa", "openai")
	id := strict.createAccount("existing", oa)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := map[string]any{"name": "a " + tt.name, "platform": "openai", "base_url": tt.baseURL,
				"credential": map[string]string{"api_key": "sk-test"}}
			if tt.msg == "" {
				strict.mustCall(http.MethodPost, "/api/v1/admin/accounts", body, http.StatusCreated, nil)
				return
			}
			strict.wantError(http.MethodPost, "/api/v1/admin/accounts", body, http.StatusBadRequest, "invalid_request_error", tt.msg)
			strict.wantError(http.MethodPatch, "/api/v1/admin/accounts/"+itoa(id), map[string]string{"base_url": tt.baseURL},
				http.StatusBadRequest, "invalid_request_error", tt.msg)
			open.mustCall(http.MethodPost, "/api/v1/admin/accounts", body, http.StatusCreated, nil)
		})
	}
	var got accountView
	strict.mustCall(http.MethodGet, "/api/v1/admin/accounts/"+itoa(id), nil, http.StatusOK, &got)
	if got.BaseURL != "https://api.openai.com" {
		t.Fatalf("refused patches changed base_url to %q", got.BaseURL)
	}
}
