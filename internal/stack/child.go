package stack

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is one process of the stack, its output going to <dir>/<name>.log.
type child struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

func (st *Stack) spawn(name string, o Options, env []string, bin string, args ...string) error {
	_, err := st.start(name, o, env, "", bin, args...)
	return err
}

func (st *Stack) start(name string, o Options, env []string, workdir, bin string, args ...string) (*child, error) {
	return st.startLogged(name, o, env, workdir, false, bin, args...)
}

// startLogged starts a child whose output goes to <dir>/<name>.log, truncated first unless
// appendLog (a restart keeps the log of the earlier run).
func (st *Stack) startLogged(name string, o Options, env []string, workdir string, appendLog bool, bin string, args ...string) (*child, error) {
	if bin == "" {
		return nil, fmt.Errorf("no binary given for %s", name)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendLog {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	logf, err := os.OpenFile(st.LogPath(name), flags, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = workdir
	cmd.Env = append(os.Environ(), env...)
	var out io.Writer = logf
	if o.Logs != nil {
		out = io.MultiWriter(logf, prefixWriter{name: name, w: o.Logs})
	}
	cmd.Stdout, cmd.Stderr = out, out
	// The children die with whoever started them, even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(c.done)
	}()
	st.procs = append(st.procs, c)
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *child) stop() {
	select {
	case <-c.done:
	default:
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	c.log.Close()
}

type prefixWriter struct {
	name string
	w    io.Writer
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := fmt.Fprintf(p.w, "[%s] %s", p.name, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
