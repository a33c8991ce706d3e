package stack

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// startControlsvc starts controlsvc with the stack's environment and waits until it is
// ready. Its log is appended to, so a restart keeps the history.
func (st *Stack) startControlsvc(ctx context.Context) error {
	c, err := st.startLogged("controlsvc", st.opts, st.ctlEnv, "", st.control != nil, st.opts.ControlsvcBin)
	if err != nil {
		return err
	}
	st.control = c
	if err := waitHTTP(ctx, st.ControlURL+"/readyz", 200); err != nil {
		return fmt.Errorf("controlsvc not ready: %w\n%s", err, st.LogTail("controlsvc"))
	}
	return nil
}

// KillControlsvc ends controlsvc with SIGKILL, as a crash would: no graceful shutdown, no
// flushing, connections reset. It returns once the process is gone.
func (st *Stack) KillControlsvc() error {
	c := st.control
	if c == nil {
		return errors.New("stack: controlsvc is not running")
	}
	select {
	case <-c.done:
		return errors.New("stack: controlsvc had already exited")
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing controlsvc: %w", err)
	}
	<-c.done
	c.log.Close()
	st.forget(c)
	return nil
}

// RestartControlsvc starts controlsvc again on the same address with the same environment
// after KillControlsvc, and waits for /readyz. It kills a controlsvc still running first.
func (st *Stack) RestartControlsvc(ctx context.Context) error {
	if c := st.control; c != nil {
		select {
		case <-c.done:
			st.forget(c)
		default:
			if err := st.KillControlsvc(); err != nil {
				return err
			}
		}
	}
	return st.startControlsvc(ctx)
}

// forget drops c from the processes Stop ends.
func (st *Stack) forget(c *child) {
	for i, p := range st.procs {
		if p == c {
			st.procs = append(st.procs[:i], st.procs[i+1:]...)
			break
		}
	}
}
