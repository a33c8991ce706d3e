package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// buildBinary compiles controlsvc once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "controlsvc")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// baseEnv is the environment without any POOLGATE_ variable of the test process.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POOLGATE_") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is a controlsvc binary started by a test.
type proc struct {
	cmd  *exec.Cmd
	addr string
	// adminAddr and metricsAddr are its admin API and /metrics listeners.
	adminAddr, metricsAddr string
	done                   chan error
	stderr                 *bytes.Buffer
}

// startBinary builds and starts controlsvc on a fresh database and Redis with the given
// secrets and extra environment, and waits until it is ready.
func startBinary(t *testing.T, dbURL, redisURL, adminToken, pluginSecret string, env ...string) *proc {
	t.Helper()
	bin := buildBinary(t)
	p := &proc{addr: freeAddr(t), adminAddr: freeAddr(t), metricsAddr: freeAddr(t), done: make(chan error, 1), stderr: &bytes.Buffer{}}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(append(baseEnv(),
		"POOLGATE_DATABASE_URL="+dbURL,
		"POOLGATE_REDIS_URL="+redisURL,
		"POOLGATE_ADMIN_TOKEN="+adminToken,
		"POOLGATE_PLUGIN_SECRET="+pluginSecret,
		"POOLGATE_LISTEN="+p.addr,
		"POOLGATE_ADMIN_LISTEN="+p.adminAddr,
		"POOLGATE_METRICS_LISTEN="+p.metricsAddr,
		"POOLGATE_CREDENTIAL_KEY="+storetest.CredentialKey,
	), env...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("controlsvc not ready within 30s: %v\n%s", err, p.stderr.String())
		}
		select {
		case err := <-p.done:
			t.Fatalf("controlsvc exited early: %v\n%s", err, p.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitExit waits up to bound for the process to end and fails unless it exited 0.
func (p *proc) waitExit(t *testing.T, bound time.Duration) {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(bound):
		t.Fatalf("no exit within %s of SIGTERM\n%s", bound, p.stderr.String())
	}
}

func TestStartServeAndGracefulStop(t *testing.T) {
	const adminToken, pluginSecret = "admin-token-abc-987-0123456789abcdef", "plugin-secret-xyz-123-0123456789abcdef"
	p := startBinary(t, testenv.PostgresURL(t), testenv.RedisURL(t), adminToken, pluginSecret)
	cmd, stderr := p.cmd, p.stderr

	// Each listener serves its own routes only (docs/design.md, "Listeners").
	for _, probe := range []struct {
		url  string
		want int
	}{
		{"http://" + p.addr + "/api/v1/admin/users", http.StatusNotFound},
		{"http://" + p.addr + "/metrics", http.StatusNotFound},
		{"http://" + p.adminAddr + "/metrics", http.StatusNotFound},
		{"http://" + p.metricsAddr + "/api/v1/admin/users", http.StatusNotFound},
		{"http://" + p.metricsAddr + "/metrics", http.StatusOK},
		{"http://" + p.adminAddr + "/readyz", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, probe.url, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != probe.want {
			t.Errorf("GET %s = %d, want %d", probe.url, resp.StatusCode, probe.want)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+p.adminAddr+"/api/v1/admin/users", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin call = %v, %v", resp, err)
	}
	resp.Body.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitExit(t, 30*time.Second)
	logs := stderr.String()
	for _, want := range []string{`"msg":"controlsvc listening"`, `"msg":"admin request"`, `"msg":"controlsvc stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	for _, secret := range []string{adminToken, pluginSecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret (%s):\n%s", secret, logs)
		}
	}
}

func TestConfigErrorExitsTwo(t *testing.T) {
	bin := buildBinary(t)
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"nothing set", nil, "POOLGATE_DATABASE_URL is required"},
		{"no admin token", []string{
			"POOLGATE_DATABASE_URL=postgres://u:pw@127.0.0.1:5432/db", "POOLGATE_REDIS_URL=redis://127.0.0.1:6379/0",
			"POOLGATE_PLUGIN_SECRET=x",
		}, "POOLGATE_ADMIN_TOKEN is required"},
		{"no credential key", []string{
			"POOLGATE_DATABASE_URL=postgres://u:pw@127.0.0.1:5432/db", "POOLGATE_REDIS_URL=redis://127.0.0.1:6379/0",
			"POOLGATE_ADMIN_TOKEN=admin-token-0123456789abcdef0123456789", "POOLGATE_PLUGIN_SECRET=plugin-secret-0123456789abcdef012345",
		}, "POOLGATE_CREDENTIAL_KEY (or POOLGATE_CREDENTIAL_KEY_FILE) is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = append(baseEnv(), tt.env...)
			out, err := cmd.CombinedOutput()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitConfig {
				t.Fatalf("exit = %v, want code %d; output %s", err, exitConfig, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output %q, want %q", out, tt.want)
			}
		})
	}
}
