// Package stack starts the whole poolgate gateway on this machine from real parts:
// PostgreSQL and Redis (throwaway servers unless URLs are given), one or more controlsvc
// instances, the fake upstream, and a real Traefik binary with the plugin loaded as a local
// plugin. `make run`, the end-to-end tests and the benchmark all start the gateway through
// it, so they exercise the same wiring. Fault tests stop, kill and restart its parts
// (control.go, storage.go).
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	// Listen addresses (host:port); empty picks a free loopback port. ControlAddr is the
	// first controlsvc instance's; further instances always get free ports.
	GatewayAddr, ControlAddr, FakeAddr string
	// AdminAddr is Traefik's admin entrypoint; empty picks a free loopback port.
	AdminAddr      string
	NoFakeUpstream bool
	// ControlsvcInstances is how many controlsvc processes share the storage, each on its
	// own port (0 means 1). Traefik gets all their URLs (POOLGATE_CONTROL_URLS).
	ControlsvcInstances int
	// Plugin settings passed to Traefik's dynamic configuration by environment; "" keeps
	// the plugin's default. Durations as Go writes them ("5s").
	DrainTimeout, WriteStallTimeout, RequestTimeout string
	// TraefikEnv adds environment variables to Traefik's (e.g. GOMAXPROCS, or
	// POOLGATE_PING_INTERVAL for the plugin's configuration).
	TraefikEnv []string
	// ControlsvcEnv adds environment variables to every controlsvc's (e.g. shorter wait
	// queue timeouts such as POOLGATE_USER_WAIT_TIMEOUT=3s).
	ControlsvcEnv []string
	// Logs, if set, also receives every child's output.
	Logs io.Writer
	// TraefikDebugAddr, when set, serves Traefik's API with its debug endpoints
	// (/debug/pprof/) on an entrypoint of its own at this address, for the bench's profiles.
	// Never in a shipped configuration: the API shows the whole configuration.
	TraefikDebugAddr string
	// FakeTLS also serves the fake upstream over TLS with HTTP/2 (Stack.FakeTLSURL), as
	// the providers do, and has Traefik trust its self-signed certificate (SSL_CERT_FILE).
	FakeTLS bool
}

// Stack is a running gateway.
type Stack struct {
	GatewayURL, FakeURL string
	// FakeTLSURL is the fake upstream's https address with Options.FakeTLS (else ""), and
	// FakeCertFile its certificate (PEM), for other processes to trust.
	FakeTLSURL, FakeCertFile string
	AdminToken, PluginSecret string
	DatabaseURL, RedisURL    string
	// ControlURL is the first controlsvc instance's base URL, ControlURLs every instance's.
	ControlURL  string
	ControlURLs []string
	// ControlAdminURL and MetricsURL are the first instance's admin API and /metrics
	// listeners (base URLs).
	ControlAdminURL, MetricsURL string
	// AdminURL is Traefik's admin entrypoint, the operators' way to the admin API.
	AdminURL string
	// PluginSecretFile holds the secret the plugin sends (pluginSecretFile; re-read every
	// 10 s, so writing it rotates the plugin's secret).
	PluginSecretFile string

	dir      string
	opts     Options
	procs    []*child
	controls []*controlInstance
	traefik  *child // its process id is TraefikPID
	pg       *testenv.Postgres
	redis    *testenv.Redis
}

const readyTimeout = 90 * time.Second

// Start brings the stack up and waits until Traefik serves the plugin's routes. On error
// everything already started is stopped again.
func Start(ctx context.Context, o Options) (st *Stack, err error) {
	if o.Dir == "" || o.RepoRoot == "" || o.TraefikBin == "" || o.ControlsvcBin == "" {
		return nil, errors.New("stack: Dir, RepoRoot, TraefikBin and ControlsvcBin are required")
	}
	if o.ControlsvcInstances < 0 {
		return nil, errors.New("stack: ControlsvcInstances must not be negative")
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
		args := []string{"-listen", addr}
		if o.FakeTLS {
			tlsAddr, err := addrOrFree("")
			if err != nil {
				return st, err
			}
			st.FakeTLSURL, st.FakeCertFile = "https://"+tlsAddr, filepath.Join(o.Dir, "fakeupstream-cert.pem")
			args = append(args, "-tls-listen", tlsAddr, "-tls-cert", st.FakeCertFile)
		}
		if err := st.spawn("fakeupstream", o, nil, o.FakeupstreamBin, args...); err != nil {
			return st, err
		}
		if err := waitHTTP(ctx, st.FakeURL+"/_fake/requests", 200); err != nil {
			return st, fmt.Errorf("fake upstream not ready: %w\n%s", err, st.LogTail("fakeupstream"))
		}
		if o.FakeTLS {
			if err := waitFile(ctx, st.FakeCertFile); err != nil {
				return st, fmt.Errorf("fake upstream's TLS certificate: %w\n%s", err, st.LogTail("fakeupstream"))
			}
		}
	}
	if err := st.startControlsvcs(ctx, o); err != nil {
		return st, err
	}
	if err := st.startTraefik(ctx, o); err != nil {
		return st, err
	}
	return st, nil
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

// PostgresPID and RedisPID are the process ids of the stack's own servers (0 for external
// ones), e.g. for the benchmark to read the CPU time their process trees spent.
func (st *Stack) PostgresPID() int {
	if st.pg == nil {
		return 0
	}
	return st.pg.PID()
}

func (st *Stack) RedisPID() int {
	if st.redis == nil {
		return 0
	}
	return st.redis.PID()
}

// ControlsvcPIDs are the process ids of the running controlsvc instances (a stopped one is
// left out), e.g. for the benchmark to read their resident memory from /proc/<pid>/status.
func (st *Stack) ControlsvcPIDs() []int {
	var pids []int
	for _, c := range st.controls {
		if c.proc != nil && !c.proc.exited() {
			pids = append(pids, c.proc.cmd.Process.Pid)
		}
	}
	return pids
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
