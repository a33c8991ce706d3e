package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// readyTimeout bounds how long a freshly started server may take to accept
// connections before the start is reported as failed.
const readyTimeout = 30 * time.Second

// stopTimeout bounds a graceful shutdown before the process group is killed.
const stopTimeout = 10 * time.Second

// logTailBytes is how much of a server log goes into an error message.
const logTailBytes = 2048

// handedOut holds the ports freePort gave: a port just closed can be the kernel's next pick
// again, and two servers of one test process on one port fail their start.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort asks the kernel for a free TCP port on 127.0.0.1, never one it gave before in
// this process. Another process may grab it before the server binds; callers retry on bind
// failures.
func freePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("finding a free port: 100 picks were all handed out before")
}

// FreeAddr is a free 127.0.0.1 address as freePort finds one.
func FreeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// logTail returns the last logTailBytes of the file at path, for error
// messages; it never fails (a missing log yields a note instead).
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log at %s: %v)", path, err)
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "(log is empty)"
	}
	return string(b)
}

// serviceUser is the unprivileged account a server runs as when the test
// process is root (PostgreSQL refuses to run as root).
type serviceUser struct {
	uid, gid uint32
}

// lookupServiceUser resolves name to its numeric ids.
func lookupServiceUser(name string) (*serviceUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("looking up user %q (needed to run as non-root): %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parsing uid of %q: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parsing gid of %q: %w", name, err)
	}
	return &serviceUser{uid: uint32(uid), gid: uint32(gid)}, nil
}

// chownTree hands dir and everything below it to su.
func (su *serviceUser) chownTree(dir string) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(su.uid), int(su.gid))
	})
}

// makeTraversable adds the execute bit for others to every ancestor of dir
// that lacks it, so a server running as another user can reach dir (the
// directories made by t.TempDir are 0700).
func makeTraversable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("making %s traversable: %w", p, err)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// procAttr puts the server in its own process group (so Stop can kill all of
// its children), asks the kernel to kill it if the test binary dies, and drops
// privileges to su when su is not nil.
func procAttr(su *serviceUser, deathSignal syscall.Signal) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSignal}
	if su != nil {
		attr.Credential = &syscall.Credential{Uid: su.uid, Gid: su.gid}
	}
	return attr
}

// process is a started server with a channel closed when it exits.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // valid after exited is closed
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop sends sig to the process, waits up to stopTimeout, then kills the
// whole process group.
func (p *process) stop(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	return nil
}
