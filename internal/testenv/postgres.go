package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultPGBinDir is where Debian's postgresql-15 package puts the server
// binaries; $POOLGATE_PG_BIN_DIR overrides it.
const defaultPGBinDir = "/usr/lib/postgresql/15/bin"

// pgUser is the OS account the server runs as when the tests run as root.
const pgUser = "postgres"

// Postgres is a PostgreSQL server used by tests: either a throwaway server
// started by StartPostgres or an existing one named by a URL.
type Postgres struct {
	// URL connects to the server's "postgres" database as a superuser.
	URL string

	mu      sync.Mutex // serialises CREATE DATABASE
	proc    *process   // nil for an external server
	bin     string
	su      *serviceUser
	port    int
	dir     string
	sockDir string
	logPath string
}

// pgBinDir returns the directory holding initdb and postgres.
func pgBinDir() (string, error) {
	dir := os.Getenv("POOLGATE_PG_BIN_DIR")
	if dir == "" {
		dir = defaultPGBinDir
	}
	if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
		return dir, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("PostgreSQL server binaries not found in %s nor on PATH; run scripts/ensure-deps.sh", dir)
}

// StartPostgres initialises a cluster in dir (created if needed) and starts a
// server on a free port of 127.0.0.1 with durability off (tests only) and
// trust authentication. Stop shuts it down and removes dir.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating postgres dir: %w", err)
	}
	var su *serviceUser
	if os.Geteuid() == 0 {
		if su, err = lookupServiceUser(pgUser); err != nil {
			return nil, err
		}
	}
	// The socket path must stay under the 107-byte limit of sun_path, so the
	// socket lives in a short directory of its own rather than under dir.
	sockDir, err := os.MkdirTemp("", "pgsock")
	if err != nil {
		return nil, fmt.Errorf("creating socket dir: %w", err)
	}
	p := &Postgres{bin: bin, su: su, dir: dir, sockDir: sockDir, logPath: filepath.Join(dir, "postgres.log")}
	if err := p.start(ctx); err != nil {
		os.RemoveAll(sockDir)
		return nil, err
	}
	return p, nil
}

func (p *Postgres) start(ctx context.Context) error {
	bin, su := p.bin, p.su
	dataDir := p.dataDir()
	if su != nil {
		if err := makeTraversable(p.dir); err != nil {
			return err
		}
		for _, d := range []string{p.dir, p.sockDir} {
			if err := su.chownTree(d); err != nil {
				return fmt.Errorf("handing %s to user %s: %w", d, pgUser, err)
			}
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
	initdb.Dir = p.dir
	initdb.SysProcAttr = procAttr(su, syscall.SIGKILL)
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb in %s: %w\n%s", dataDir, err, tail(out))
	}

	const attempts = 3 // a free port can be taken between lookup and bind
	var lastErr error
	for i := 0; i < attempts; i++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		lastErr = p.run(ctx, port, false)
		if lastErr == nil {
			return nil
		}
		if !strings.Contains(logTail(p.logPath), "could not bind") {
			return lastErr
		}
	}
	return lastErr
}

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, "data") }

// run starts the server of the initialised cluster on port; appendLog keeps the log of an
// earlier run (a restart).
func (p *Postgres) run(ctx context.Context, port int, appendLog bool) error {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendLog {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	logFile, err := os.OpenFile(p.logPath, flags, 0o644)
	if err != nil {
		return fmt.Errorf("creating postgres log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(filepath.Join(p.bin, "postgres"),
		"-D", p.dataDir(),
		"-p", strconv.Itoa(port),
		"-k", p.sockDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
	)
	cmd.Dir = p.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// SIGQUIT is PostgreSQL's immediate shutdown: used if the test binary dies.
	cmd.SysProcAttr = procAttr(p.su, syscall.SIGQUIT)
	proc, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	p.proc = proc
	p.port = port
	p.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := p.waitReady(ctx); err != nil {
		_ = proc.stop(syscall.SIGQUIT)
		p.proc = nil
		return fmt.Errorf("%w\npostgres log (%s):\n%s", err, p.logPath, logTail(p.logPath))
	}
	return nil
}

// PID is the process id of the server this package started (the postmaster, or the
// wrapper that runs it as a service user), 0 for an external server.
func (p *Postgres) PID() int {
	if p.proc == nil {
		return 0
	}
	return p.proc.cmd.Process.Pid
}

// waitReady polls until the server accepts a query, it exits, or the
// timeout passes.
func (p *Postgres) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		select {
		case <-p.proc.exited:
			return fmt.Errorf("postgres exited during start: %v", p.proc.err)
		default:
		}
		err := ping(ctx, p.URL)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready after %s: %w", readyTimeout, err)
		case <-p.proc.exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ping(ctx context.Context, connURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// externalPostgres wraps an existing server; Stop leaves it alone.
func externalPostgres(ctx context.Context, serverURL string) (*Postgres, error) {
	if err := ping(ctx, serverURL); err != nil {
		return nil, fmt.Errorf("connecting to $POOLGATE_TEST_DATABASE_URL: %w", err)
	}
	return &Postgres{URL: serverURL}, nil
}

var dbNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateDatabase creates an empty database called name (lower-case letters,
// digits and underscores) and returns a URL connecting to it.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	if !dbNameRE.MatchString(name) {
		return "", fmt.Errorf("invalid database name %q: want %s", name, dbNameRE)
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return "", fmt.Errorf("parsing server URL: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		return "", fmt.Errorf("connecting to create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// dropDatabase removes name, closing any connection still open to it.
func (p *Postgres) dropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		return fmt.Errorf("connecting to drop database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	return nil
}

// Stop shuts a throwaway server down (fast shutdown, then kill) and removes
// its directory. For an external server it does nothing.
func (p *Postgres) Stop() error {
	if p.proc == nil {
		return nil
	}
	// SIGINT is PostgreSQL's fast shutdown: disconnect clients, exit.
	err := p.proc.stop(syscall.SIGINT)
	p.proc = nil
	if rmErr := os.RemoveAll(p.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("removing %s: %w", p.dir, rmErr))
	}
	if rmErr := os.RemoveAll(p.sockDir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("removing %s: %w", p.sockDir, rmErr))
	}
	return err
}

// ShutdownMode is how Shutdown stops the server, as pg_ctl's -m names them.
type ShutdownMode int

const (
	// ShutdownFast (SIGINT) rolls back open transactions, disconnects clients and exits.
	ShutdownFast ShutdownMode = iota
	// ShutdownImmediate (SIGQUIT) exits at once, as a crash would; the next start recovers
	// from the WAL. The throwaway servers run with synchronous_commit off, so commits of
	// the last wal_writer_delay (200 ms) are lost, acknowledged or not: a test that checks
	// no acknowledged write is lost stops the server with ShutdownFast.
	ShutdownImmediate
)

// Shutdown stops a throwaway server and keeps its data directory, for Restart.
func (p *Postgres) Shutdown(mode ShutdownMode) error {
	if p.proc == nil {
		return errors.New("postgres is not running here (stopped, or an external server)")
	}
	sig := syscall.SIGINT
	if mode == ShutdownImmediate {
		sig = syscall.SIGQUIT
	}
	err := p.proc.stop(sig)
	p.proc = nil
	return err
}

// Restart starts the server again on the same port and data directory after Shutdown, so
// clients holding its URLs reconnect to it.
func (p *Postgres) Restart(ctx context.Context) error {
	if p.proc != nil {
		return errors.New("postgres is still running: Shutdown first")
	}
	if p.port == 0 {
		return errors.New("postgres was never started here (an external server?)")
	}
	return p.run(ctx, p.port, true)
}

// tail trims command output to its last logTailBytes.
func tail(b []byte) string {
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return string(b)
}
