// Package stack starts the whole poolgate gateway on this machine from real parts:
// PostgreSQL and Redis (throwaway servers unless URLs are given), controlsvc, the fake
// upstream, and a real Traefik binary with the plugin loaded as a local plugin.
// `make run`, the end-to-end tests and the benchmark all start the gateway through it, so
// they exercise the same wiring.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/poolgate/poolgate/internal/testenv"
)

// Options say what to start. Zero values pick sensible throwaway defaults.
type Options struct {
	// Dir holds logs, server data and Traefik's working directory; required.
	Dir string
	// RepoRoot is the checkout holding plugin/, .traefik.yml and the Traefik configs.
	RepoRoot string
	// Binaries. FakeupstreamBin may be empty when NoFakeUpstream is set.
	TraefikBin, ControlsvcBin, FakeupstreamBin string
	// Existing servers; empty starts throwaway ones in Dir.
	DatabaseURL, RedisURL    string
	AdminToken, PluginSecret string
	// Listen addresses (host:port); empty picks a free loopback port.
	GatewayAddr, ControlAddr, FakeAddr string
	NoFakeUpstream                     bool
	// TraefikEnv adds environment variables to Traefik's (e.g. GOMAXPROCS, or
	// POOLGATE_PING_INTERVAL for the plugin's configuration).
	TraefikEnv []string
	// ControlsvcEnv adds environment variables to controlsvc's (e.g. shorter wait queue
	// timeouts such as POOLGATE_USER_WAIT_TIMEOUT=3s).
	ControlsvcEnv []string
	// Logs, if set, also receives every child's output.
	Logs io.Writer
}

// Stack is a running gateway.
type Stack struct {
	GatewayURL, ControlURL, FakeURL string
	AdminToken, PluginSecret        string
	DatabaseURL, RedisURL           string

	dir     string
	opts    Options
	procs   []*child
	control *child   // controlsvc, replaced by RestartControlsvc
	traefik *child   // its process id is TraefikPID
	ctlEnv  []string // controlsvc's environment, kept for restarts
	pg      *testenv.Postgres
	redis   *testenv.Redis
}

const readyTimeout = 90 * time.Second

// Start brings the stack up and waits until Traefik serves the plugin's routes. On error
// everything already started is stopped again.
func Start(ctx context.Context, o Options) (st *Stack, err error) {
	if o.Dir == "" || o.RepoRoot == "" || o.TraefikBin == "" || o.ControlsvcBin == "" {
		return nil, errors.New("stack: Dir, RepoRoot, TraefikBin and ControlsvcBin are required")
	}
	st = &Stack{dir: o.Dir, opts: o, AdminToken: o.AdminToken, PluginSecret: o.PluginSecret}
	defer func() {
		if err != nil {
			st.Stop()
			st = nil
		}
	}()
	if st.AdminToken == "" {
		st.AdminToken = "adm-" + randomHex(16)
	}
	if st.PluginSecret == "" {
		st.PluginSecret = "plg-" + randomHex(16)
	}
	if err := st.startStorage(ctx, o); err != nil {
		return st, err
	}
	if !o.NoFakeUpstream {
		addr, err := addrOrFree(o.FakeAddr)
		if err != nil {
			return st, err
		}
		st.FakeURL = "http://" + addr
		if err := st.spawn("fakeupstream", o, nil, o.FakeupstreamBin, "-listen", addr); err != nil {
			return st, err
		}
		if err := waitHTTP(ctx, st.FakeURL+"/_fake/requests", 200); err != nil {
			return st, fmt.Errorf("fake upstream not ready: %w\n%s", err, st.LogTail("fakeupstream"))
		}
	}
	controlAddr, err := addrOrFree(o.ControlAddr)
	if err != nil {
		return st, err
	}
	st.ControlURL = "http://" + controlAddr
	env := []string{
		"POOLGATE_DATABASE_URL=" + st.DatabaseURL,
		"POOLGATE_REDIS_URL=" + st.RedisURL,
		"POOLGATE_ADMIN_TOKEN=" + st.AdminToken,
		"POOLGATE_PLUGIN_SECRET=" + st.PluginSecret,
		"POOLGATE_LISTEN=" + controlAddr,
	}
	st.ctlEnv = append(env, o.ControlsvcEnv...)
	if err := st.startControlsvc(ctx); err != nil {
		return st, err
	}
	if err := st.startTraefik(ctx, o); err != nil {
		return st, err
	}
	return st, nil
}

func (st *Stack) startStorage(ctx context.Context, o Options) error {
	st.DatabaseURL, st.RedisURL = o.DatabaseURL, o.RedisURL
	if st.DatabaseURL == "" {
		pg, err := testenv.StartPostgres(ctx, filepath.Join(o.Dir, "postgres"))
		if err != nil {
			return fmt.Errorf("starting postgres: %w", err)
		}
		st.pg = pg
		if st.DatabaseURL, err = pg.CreateDatabase(ctx, "poolgate"); err != nil {
			return fmt.Errorf("creating database: %w", err)
		}
	}
	if st.RedisURL == "" {
		r, err := testenv.StartRedis(ctx, filepath.Join(o.Dir, "redis"))
		if err != nil {
			return fmt.Errorf("starting redis: %w", err)
		}
		st.redis = r
		st.RedisURL = r.URL
	}
	return nil
}

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
	if err := os.WriteFile(filepath.Join(work, "traefik.yml"), static, 0o644); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(o.RepoRoot, "traefik-dynamic.yml"), filepath.Join(work, "traefik-dynamic.yml")); err != nil {
		return err
	}
	st.GatewayURL = "http://" + addr
	env := append([]string{
		"POOLGATE_CONTROL_URL=" + st.ControlURL,
		"POOLGATE_PLUGIN_SECRET=" + st.PluginSecret,
	}, o.TraefikEnv...)
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

// InstallPlugin copies the plugin as Traefik expects a local plugin:
// <pluginsLocal>/src/github.com/poolgate/poolgate/{.traefik.yml,go.mod,plugin/*.go}.
// Test files are left out: Traefik's interpreter never loads them.
func InstallPlugin(repoRoot, pluginsLocal string) error {
	dst := filepath.Join(pluginsLocal, "src", "github.com", "poolgate", "poolgate")
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dst, "plugin"), 0o755); err != nil {
		return err
	}
	for _, f := range []string{".traefik.yml", "go.mod"} {
		if err := copyFile(filepath.Join(repoRoot, f), filepath.Join(dst, f)); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(filepath.Join(repoRoot, "plugin"))
	if err != nil {
		return fmt.Errorf("reading plugin dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		if err := copyFile(filepath.Join(repoRoot, "plugin", name), filepath.Join(dst, "plugin", name)); err != nil {
			return err
		}
	}
	return nil
}

func waitPluginLoaded(ctx context.Context, gatewayURL string) error {
	deadline := time.Now().Add(readyTimeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gatewayURL+"/v1/responses", strings.NewReader(`{}`))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized && strings.Contains(string(body), "Invalid API key") {
				return nil
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("POST /v1/responses without a key never answered 401 from the plugin (last: %s)", last)
}

// Stop ends every process and throwaway server, newest first.
func (st *Stack) Stop() {
	for i := len(st.procs) - 1; i >= 0; i-- {
		st.procs[i].stop()
	}
	st.procs = nil
	if st.redis != nil {
		st.redis.Stop()
		st.redis = nil
	}
	if st.pg != nil {
		st.pg.Stop()
		st.pg = nil
	}
}

// TraefikPID is the process id of the stack's Traefik (0 when it was not started), e.g. for
// the benchmark to read the CPU time Traefik spent from /proc/<pid>/stat.
func (st *Stack) TraefikPID() int {
	if st.traefik == nil {
		return 0
	}
	return st.traefik.cmd.Process.Pid
}

// LogPath is where a child's output is written.
func (st *Stack) LogPath(name string) string { return filepath.Join(st.dir, name+".log") }

// LogTail returns the end of a child's log, for error messages.
func (st *Stack) LogTail(name string) string {
	b, err := os.ReadFile(st.LogPath(name))
	if err != nil {
		return ""
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return fmt.Sprintf("--- %s log (tail) ---\n%s", name, b)
}

// Log returns a child's whole log.
func (st *Stack) Log(name string) string {
	b, _ := os.ReadFile(st.LogPath(name))
	return string(b)
}

func addrOrFree(addr string) (string, error) {
	if addr != "" {
		return addr, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitHTTP(ctx context.Context, url string, want int) error {
	deadline := time.Now().Add(readyTimeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("GET %s: no %d within %s (last: %s)", url, want, readyTimeout, last)
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
