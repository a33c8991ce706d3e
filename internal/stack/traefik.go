package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// startTraefik lays out Traefik's working directory the way a local plugin is installed
// (./plugins-local/src/<moduleName>/ with the manifest), writes the static configuration
// with the chosen address and starts the real binary there.
func (st *Stack) startTraefik(ctx context.Context, o Options) error {
	work := filepath.Join(o.Dir, "traefik")
	if err := InstallPlugin(o.RepoRoot, filepath.Join(work, "plugins-local")); err != nil {
		return err
	}
	addr, err := addrOrFree(o.GatewayAddr)
	if err != nil {
		return err
	}
	static, err := os.ReadFile(filepath.Join(o.RepoRoot, "traefik-static.yml"))
	if err != nil {
		return fmt.Errorf("reading static config: %w", err)
	}
	const defaultAddr = `address: "127.0.0.1:8080"`
	if !strings.Contains(string(static), defaultAddr) {
		return fmt.Errorf("traefik-static.yml: entry point line %q not found", defaultAddr)
	}
	static = []byte(strings.Replace(string(static), defaultAddr, fmt.Sprintf("address: %q", addr), 1))
	adminAddr, err := addrOrFree(o.AdminAddr)
	if err != nil {
		return err
	}
	const defaultAdminAddr = `address: "127.0.0.1:8081"`
	if !strings.Contains(string(static), defaultAdminAddr) {
		return fmt.Errorf("traefik-static.yml: admin entry point line %q not found", defaultAdminAddr)
	}
	static = []byte(strings.Replace(string(static), defaultAdminAddr, fmt.Sprintf("address: %q", adminAddr), 1))
	if o.TraefikDebugAddr != "" {
		if static, err = WithDebugAPI(static, o.TraefikDebugAddr); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(work, "traefik.yml"), static, 0o644); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(o.RepoRoot, "traefik-dynamic.yml"), filepath.Join(work, "traefik-dynamic.yml")); err != nil {
		return err
	}
	st.GatewayURL, st.AdminURL = "http://"+addr, "http://"+adminAddr
	st.PluginSecretFile = filepath.Join(o.Dir, "plugin-secret")
	if err := os.WriteFile(st.PluginSecretFile, []byte(st.PluginSecret+"\n"), 0o600); err != nil {
		return err
	}
	env := append(pluginEnv(st, o), o.TraefikEnv...)
	if st.FakeCertFile != "" {
		env = append(env, "SSL_CERT_FILE="+st.FakeCertFile) // the fake's TLS listener (Options.FakeTLS)
	}
	c, err := st.start("traefik", o, env, work, o.TraefikBin, "--configFile="+filepath.Join(work, "traefik.yml"))
	if err != nil {
		return err
	}
	st.traefik = c
	if err := waitHTTP(ctx, st.GatewayURL+"/ping", 200); err != nil {
		return fmt.Errorf("traefik not ready: %w\n%s", err, st.LogTail("traefik"))
	}
	// A broken plugin does not stop Traefik: it drops every router using a plugin, which
	// then answers 404. The plugin's own answer to a keyless request proves it is loaded.
	if err := waitPluginLoaded(ctx, st.GatewayURL); err != nil {
		return fmt.Errorf("traefik did not load the poolgate plugin: %w\n%s", err, st.LogTail("traefik"))
	}
	return nil
}

// WithDebugAPI adds the entrypoint "traefik" at addr and serves the API there with its
// debug endpoints (api.insecure routes api@internal to that entrypoint).
func WithDebugAPI(static []byte, addr string) ([]byte, error) {
	const api, eps = "api:\n  dashboard: false\n", "entryPoints:\n"
	s := string(static)
	if !strings.Contains(s, api) || !strings.Contains(s, eps) {
		return nil, fmt.Errorf("traefik-static.yml: %q or %q not found", api, eps)
	}
	s = strings.Replace(s, api, api+"  insecure: true\n  debug: true\n", 1)
	s = strings.Replace(s, eps, fmt.Sprintf("%s  traefik:\n    address: %q\n", eps, addr), 1)
	return []byte(s), nil
}

// InstallPlugin copies the plugin as Traefik expects a local plugin:
// <pluginsLocal>/src/github.com/poolgate/poolgate/{.traefik.yml,go.mod,plugin/**/*.go}:
// the plugin's subpackages (plugin/convert, plugin/wire) are imported from the same GOPATH.
// Test files and testdata are left out: Traefik's interpreter never loads them.
func InstallPlugin(repoRoot, pluginsLocal string) error {
	dst := filepath.Join(pluginsLocal, "src", "github.com", "poolgate", "poolgate")
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	for _, f := range []string{".traefik.yml", "go.mod"} {
		if err := copyFile(filepath.Join(repoRoot, f), filepath.Join(dst, f)); err != nil {
			return err
		}
	}
	src := filepath.Join(repoRoot, "plugin")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		return copyFile(p, filepath.Join(dst, "plugin", rel))
	})
	if err != nil {
		return fmt.Errorf("copying plugin sources: %w", err)
	}
	return nil
}

// pluginEnv is what traefik-dynamic.yml reads to configure the plugin: the controlsvc
// addresses, the secret and the settings Options names.
func pluginEnv(st *Stack, o Options) []string {
	env := []string{
		"POOLGATE_CONTROL_URL=" + st.ControlURL,
		"POOLGATE_CONTROL_URLS=" + strings.Join(st.ControlURLs, ","),
		"POOLGATE_CONTROL_ADMIN_URL=" + st.ControlAdminURL,
		// The secret from a file, as the shipped configs do (it never appears in Traefik's
		// configuration or logs); PluginSecretFile can be rewritten to rotate it.
		"POOLGATE_PLUGIN_SECRET_FILE=" + st.PluginSecretFile,
		// Every test client comes from 127.0.0.1: the per-address flood guards must not
		// throttle the load tests and benchmarks.
		"POOLGATE_IP_MAX_IN_FLIGHT=100000", "POOLGATE_IP_RATE=1000000", "POOLGATE_IP_BURST=1000000",
		"POOLGATE_ADMIN_RATE=1000000", "POOLGATE_ADMIN_BURST=1000000",
		"POOLGATE_ALLOW_PRIVATE_UPSTREAMS=1", // the fake upstream is on 127.0.0.1
		// Empty: traefik-dynamic.yml's defaults, whatever the caller's environment holds, so
		// that the silent-upstream tests see the shipped bounds (Options.TraefikEnv may
		// still set them, after these).
		"POOLGATE_FIRST_TOKEN_TIMEOUT=", "POOLGATE_RESPONSE_HEADER_TIMEOUT=", "POOLGATE_SAME_ACCOUNT_RETRY_MAX=",
	}
	for _, s := range []struct{ name, value string }{
		{"POOLGATE_DRAIN_TIMEOUT", o.DrainTimeout},
		{"POOLGATE_WRITE_STALL_TIMEOUT", o.WriteStallTimeout},
		{"POOLGATE_REQUEST_TIMEOUT", o.RequestTimeout},
	} {
		if s.value != "" {
			env = append(env, s.name+"="+s.value)
		}
	}
	return env
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
