package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a throwaway redis-server started by StartRedis.
type Redis struct {
	// URL connects to database 0 of the server.
	URL string

	proc    *process
	bin     string
	port    int
	dir     string
	logPath string
}

// StartRedis starts a redis-server on a free port of 127.0.0.1 with
// persistence off and its working directory in dir (created if needed).
// Stop shuts it down and removes dir.
func StartRedis(ctx context.Context, dir string) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found on PATH; run scripts/ensure-deps.sh to install it")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating redis dir: %w", err)
	}
	r := &Redis{bin: bin, dir: dir, logPath: filepath.Join(dir, "redis.log")}
	const attempts = 3 // a free port can be taken between lookup and bind
	var lastErr error
	for i := 0; i < attempts; i++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		lastErr = r.run(ctx, port, false)
		if lastErr == nil {
			return r, nil
		}
		if !strings.Contains(logTail(r.logPath), "Address already in use") {
			break
		}
	}
	return nil, lastErr
}

// run starts the server on port; appendLog keeps the log of an earlier run (a restart).
func (r *Redis) run(ctx context.Context, port int, appendLog bool) error {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendLog {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	logFile, err := os.OpenFile(r.logPath, flags, 0o644)
	if err != nil {
		return fmt.Errorf("creating redis log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	cmd.Dir = r.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = procAttr(nil, syscall.SIGKILL)
	proc, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	r.proc = proc
	r.port = port
	r.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	if err := r.waitReady(ctx); err != nil {
		_ = proc.stop(syscall.SIGKILL)
		r.proc = nil
		return fmt.Errorf("%w\nredis log (%s):\n%s", err, r.logPath, logTail(r.logPath))
	}
	return nil
}

func (r *Redis) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	opts, err := redis.ParseURL(r.URL)
	if err != nil {
		return fmt.Errorf("parsing redis URL: %w", err)
	}
	opts.MaxRetries = -1
	client := redis.NewClient(opts)
	defer client.Close()
	for {
		select {
		case <-r.proc.exited:
			return fmt.Errorf("redis-server exited during start: %v", r.proc.err)
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err := client.Ping(pctx).Err()
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis-server not ready after %s: %w", readyTimeout, err)
		case <-r.proc.exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop shuts the server down and removes its directory.
func (r *Redis) Stop() error {
	if r.proc == nil {
		return nil
	}
	err := r.proc.stop(syscall.SIGTERM)
	r.proc = nil
	if rmErr := os.RemoveAll(r.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("removing %s: %w", r.dir, rmErr))
	}
	return err
}

// Kill ends the server with SIGKILL, as a crash would, and keeps its directory. Persistence
// is off, so whatever it held is gone: Restart brings up an empty server.
func (r *Redis) Kill() error {
	if r.proc == nil {
		return errors.New("redis-server is not running")
	}
	err := r.proc.stop(syscall.SIGKILL)
	r.proc = nil
	return err
}

// Restart starts a fresh, empty server on the port of the killed one, so clients holding
// its URL reconnect to it.
func (r *Redis) Restart(ctx context.Context) error {
	if r.proc != nil {
		return errors.New("redis-server is still running: Kill it first")
	}
	if r.port == 0 {
		return errors.New("redis-server was never started")
	}
	return r.run(ctx, r.port, true)
}

// PID is the process id of the server this package started, 0 for an external server.
func (r *Redis) PID() int {
	if r.proc == nil {
		return 0
	}
	return r.proc.cmd.Process.Pid
}
