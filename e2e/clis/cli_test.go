package clis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pins are the CLI versions and default models of scripts/clis.env.
type pins map[string]string

func readPins(root string) (pins, error) {
	f, err := os.Open(filepath.Join(root, "scripts", "clis.env"))
	if err != nil {
		return nil, fmt.Errorf("reading the pinned CLI versions: %w", err)
	}
	defer f.Close()
	p := pins{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("scripts/clis.env: %q is not NAME=value", line)
		}
		p[k] = v
	}
	for _, k := range []string{"CODEX_PACKAGE", "CODEX_VERSION", "CLAUDE_CODE_PACKAGE", "CLAUDE_CODE_VERSION",
		"CODEX_DEFAULT_MODEL", "CLAUDE_CODE_DEFAULT_MODEL"} {
		if p[k] == "" {
			return nil, fmt.Errorf("scripts/clis.env sets no %s", k)
		}
	}
	return p, sc.Err()
}

// binary is where scripts/ensure-clis.sh installed a CLI: the same cache layout.
func binary(t *testing.T, pkgVar, versionVar, name string) string {
	t.Helper()
	cache := os.Getenv("POOLGATE_CLI_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "poolgate", "clis")
	}
	dir := filepath.Join(cache, pinned[pkgVar]+"@"+pinned[versionVar])
	bin := filepath.Join(dir, "node_modules", ".bin", name)
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		t.Fatalf("%s@%s is not installed in %s: run scripts/ensure-clis.sh (make test does)", pinned[pkgVar], pinned[versionVar], dir)
	}
	return bin
}

// cliTimeout bounds one CLI run; the process group is killed when it is up. Each run here
// takes about a second against the fake upstream.
const cliTimeout = 120 * time.Second

type cliRun struct {
	Stdout, Stderr string
	Err            error // the exit status, or the timeout
}

func (r cliRun) String() string {
	return fmt.Sprintf("exit: %v\n--- stdout ---\n%s\n--- stderr ---\n%s", r.Err, r.Stdout, r.Stderr)
}

// runCLI runs bin in workdir with exactly env (nothing of the test's own environment
// leaks in but PATH), stdin closed, in a process group of its own that is killed on
// timeout.
func runCLI(t *testing.T, workdir string, env []string, bin string, args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = workdir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "TERM=dumb", "NO_COLOR=1"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	// Whatever the CLI left running in its group (a tool's child) goes with it.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("killed after %s: %w", cliTimeout, ctx.Err())
	}
	return cliRun{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

// sandbox is a run's temporary HOME and workspace: no real user configuration is read.
type sandbox struct{ Home, Work string }

func newSandbox(t *testing.T) sandbox {
	t.Helper()
	// Codex refuses to place its helper links under /tmp and says so; it works without them.
	root := t.TempDir()
	s := sandbox{Home: filepath.Join(root, "home"), Work: filepath.Join(root, "work")}
	for _, d := range []string{s.Home, s.Work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}
