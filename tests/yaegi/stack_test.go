package yaegi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
	"github.com/poolgate/poolgate/internal/testenv"
)

// Secrets of the test stack.
const (
	adminToken   = "test-admin-token-0123456789abcdef0123"
	pluginSecret = "test-plugin-secret-0123456789abcdef012"
)

// stack is everything the plugin talks to: PostgreSQL and Redis (throwaway servers),
// the real controlsvc binary, and the fake upstream; plus one Yaegi plugin instance.
type stack struct {
	dir        string
	pg         *testenv.Postgres
	redis      *testenv.Redis
	controlURL string
	// controlAdminURL is controlsvc's admin listener.
	controlAdminURL string
	control         *exec.Cmd
	controlEnd      chan struct{}
	controlLog      string
	fake            *fakeupstream.Server
	fakeServer      *httptest.Server
	admin           adminClient
	handler         http.Handler // the plugin under Yaegi, configured for this stack
}

var (
	stackOnce sync.Once
	theStack  *stack
	stackErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theStack != nil {
		theStack.stop()
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// getStack starts the shared stack on first use.
func getStack(t *testing.T) *stack {
	t.Helper()
	p := plugin(t)
	stackOnce.Do(func() {
		theStack, stackErr = startStack(p)
	})
	if stackErr != nil {
		t.Fatalf("starting the test stack: %v", stackErr)
	}
	return theStack
}

func startStack(p *yaegiPlugin) (_ *stack, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "poolgate-yaegi-stack-")
	if err != nil {
		return nil, err
	}
	s := &stack{dir: dir}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	bin := filepath.Join(dir, "controlsvc")
	if err := buildControlsvc(ctx, bin); err != nil {
		return nil, err
	}
	if s.pg, err = testenv.StartPostgres(ctx, filepath.Join(dir, "pg")); err != nil {
		return nil, err
	}
	dbURL, err := s.pg.CreateDatabase(ctx, "poolgate")
	if err != nil {
		return nil, err
	}
	if s.redis, err = testenv.StartRedis(ctx, filepath.Join(dir, "redis")); err != nil {
		return nil, err
	}
	if err := s.startControlsvc(ctx, bin, dbURL); err != nil {
		return nil, err
	}
	s.admin = adminClient{base: s.controlAdminURL + "/api/v1/admin", token: adminToken}

	s.fake = fakeupstream.New()
	s.fakeServer = httptest.NewServer(s.fake)

	s.handler, err = p.newHandler(context.Background(), nextHandler(), s.pluginSettings(nil), "poolgate-test")
	if err != nil {
		return nil, fmt.Errorf("creating the plugin instance: %w", err)
	}
	if err := s.warmUp(); err != nil {
		return nil, fmt.Errorf("warming up the interpreter: %w", err)
	}
	return s, nil
}

// warmUp runs each main path of the plugin once, one request at a time, and waits for the
// reports. Yaegi v0.16.1 builds reflect types of interpreted code lazily and caches them
// without a lock (interp/type.go refType), which the race detector flags when two
// goroutines hit a path for the first time together. That race is inside Yaegi, not in
// the plugin; after one serial pass the caches are filled and only plugin code is watched.
func (s *stack) warmUp() error {
	tn, err := s.seedTenant("warmup",
		accountSpec{name: "limited", priority: 1, script: &fakeupstream.Script{Status: 429}},
		accountSpec{name: "healthy", priority: 2})
	if err != nil {
		return err
	}
	requests := []struct{ path, body string }{
		{"/v1/responses", `{"model":"gpt-4o","input":"hi"}`}, // fails over from the 429 account
		{"/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`},
		{"/v1/chat/completions", `{"model":"gpt-4o","messages":[]}`},
		{"/v1/chat/completions", `{"model":"gpt-4o","messages":[],"stream":true}`},
		{"/v1/responses", `{"model":""}`},
	}
	reports := 0
	for _, r := range requests {
		req := httptest.NewRequest(http.MethodPost, r.path, strings.NewReader(r.body))
		req.Header.Set("Authorization", "Bearer "+tn.key)
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			reports++
		} else if rec.Code != http.StatusBadRequest {
			return fmt.Errorf("warm-up %s %s: status %d: %s", r.path, r.body, rec.Code, rec.Body)
		}
	}
	_, err = s.usageRows(tn.keyID, reports, 20*time.Second)
	return err
}

// nextHandler stands in for the Traefik service behind the middleware; the AI routes must
// never reach it.
func nextHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Reached-Next", "true")
		http.Error(w, "reached next", http.StatusTeapot)
	})
}

// pluginSettings are the middleware's dynamic configuration keys, as strings the way
// Traefik's file provider hands them over; extra overrides them.
func (s *stack) pluginSettings(extra map[string]any) map[string]any {
	settings := map[string]any{
		"controlURL":            s.controlURL,
		"pluginSecret":          pluginSecret,
		"maxAccountSwitches":    "3",
		"admissionTimeout":      "3s",
		"upstreamHeaderTimeout": "20s",
		"allowPrivateUpstreams": "true", // the fake upstream is on 127.0.0.1
	}
	for k, v := range extra {
		settings[k] = v
	}
	return settings
}

// buildControlsvc builds the real control service. It runs as a process because its
// packages are internal to the controlsvc tree and cannot be imported from this module.
func buildControlsvc(ctx context.Context, bin string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./controlsvc/cmd/controlsvc")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building controlsvc: %w\n%s", err, out)
	}
	return nil
}

// credentialKey encrypts the test accounts' credentials: base64 of
// "poolgate-dev-credential-key-0001", internal/stack's development key.
const credentialKey = "cG9vbGdhdGUtZGV2LWNyZWRlbnRpYWwta2V5LTAwMDE="

func (s *stack) startControlsvc(ctx context.Context, bin, dbURL string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s.controlURL = "http://" + addr
	adminPort, err := freePort()
	if err != nil {
		return err
	}
	metricsPort, err := freePort()
	if err != nil {
		return err
	}
	s.controlAdminURL = "http://127.0.0.1:" + strconv.Itoa(adminPort)
	s.controlLog = filepath.Join(s.dir, "controlsvc.log")
	logFile, err := os.Create(s.controlLog)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"POOLGATE_DATABASE_URL="+dbURL,
		"POOLGATE_REDIS_URL="+s.redis.URL,
		"POOLGATE_ADMIN_TOKEN="+adminToken,
		"POOLGATE_PLUGIN_SECRET="+pluginSecret,
		"POOLGATE_LISTEN="+addr,
		"POOLGATE_ADMIN_LISTEN=127.0.0.1:"+strconv.Itoa(adminPort),
		"POOLGATE_METRICS_LISTEN=127.0.0.1:"+strconv.Itoa(metricsPort),
		"POOLGATE_LOG_LEVEL=info",
		"POOLGATE_CREDENTIAL_KEY="+credentialKey,
		"POOLGATE_ALLOW_PRIVATE_UPSTREAMS=1",
	)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting controlsvc: %w", err)
	}
	s.control = cmd
	s.controlEnd = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(s.controlEnd)
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.controlURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.controlEnd:
			return fmt.Errorf("controlsvc exited during start; log:\n%s", s.controlLogTail())
		case <-ctx.Done():
			return fmt.Errorf("controlsvc not ready: %w; log:\n%s", ctx.Err(), s.controlLogTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("controlsvc not ready after 60s; log:\n%s", s.controlLogTail())
		}
	}
}

func (s *stack) controlLogTail() string {
	b, err := os.ReadFile(s.controlLog)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

func (s *stack) stop() {
	if s.fake != nil {
		s.fake.Close()
	}
	if s.fakeServer != nil {
		s.fakeServer.Close()
	}
	if s.control != nil {
		_ = s.control.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.controlEnd:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.control.Process.Pid, syscall.SIGKILL)
			<-s.controlEnd
			fmt.Fprintf(os.Stderr, "controlsvc ignored SIGTERM for 10s and was killed; log:\n%s\n", s.controlLogTail())
		}
	}
	var errs []error
	if s.redis != nil {
		errs = append(errs, s.redis.Stop())
	}
	if s.pg != nil {
		errs = append(errs, s.pg.Stop())
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the test stack: %v\n", err)
	}
	os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
