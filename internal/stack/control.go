package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// controlInstance is one controlsvc process; restarts reuse its address and environment.
type controlInstance struct {
	name string // log name: controlsvc, controlsvc-2, …
	url  string // the internal listener's base URL
	// adminURL and metricsURL are its admin API and /metrics listeners' base URLs.
	adminURL, metricsURL string
	env                  []string
	proc                 *child // nil while stopped
}

// controlStopTimeout bounds a graceful stop (SIGTERM) before the process is killed; it
// covers controlsvc's own shutdown allowance.
const controlStopTimeout = 3 * time.Minute

// startControlsvcs starts every instance, one after the other: the first migrates the
// schema, the others find it migrated.
func (st *Stack) startControlsvcs(ctx context.Context, o Options) error {
	n := o.ControlsvcInstances
	if n == 0 {
		n = 1
	}
	for i := 0; i < n; i++ {
		want := ""
		if i == 0 {
			want = o.ControlAddr
		}
		addr, err := addrOrFree(want)
		if err != nil {
			return err
		}
		adminAddr, err := addrOrFree("")
		if err != nil {
			return err
		}
		metricsAddr, err := addrOrFree("")
		if err != nil {
			return err
		}
		name := "controlsvc"
		if i > 0 {
			name = fmt.Sprintf("controlsvc-%d", i+1)
		}
		env := append([]string{
			"POOLGATE_DATABASE_URL=" + st.DatabaseURL,
			"POOLGATE_REDIS_URL=" + st.RedisURL,
			"POOLGATE_ADMIN_TOKEN=" + st.AdminToken,
			"POOLGATE_PLUGIN_SECRET=" + st.PluginSecret,
			"POOLGATE_LISTEN=" + addr,
			"POOLGATE_ADMIN_LISTEN=" + adminAddr,
			"POOLGATE_METRICS_LISTEN=" + metricsAddr,
			"POOLGATE_CREDENTIAL_KEY=" + credentialKey(), // credential_key.go
			// The fake upstream listens on 127.0.0.1 over http (docs/design.md, "Upstream
			// addresses").
			"POOLGATE_ALLOW_PRIVATE_UPSTREAMS=1",
		}, o.ControlsvcEnv...)
		c := &controlInstance{name: name, url: "http://" + addr, env: env,
			adminURL: "http://" + adminAddr, metricsURL: "http://" + metricsAddr}
		st.controls = append(st.controls, c)
		st.ControlURLs = append(st.ControlURLs, c.url)
		if err := st.StartControlsvcAt(ctx, i); err != nil {
			return err
		}
	}
	first := st.controls[0]
	st.ControlURL, st.ControlAdminURL, st.MetricsURL = first.url, first.adminURL, first.metricsURL
	return nil
}

func (st *Stack) control(i int) (*controlInstance, error) {
	if i < 0 || i >= len(st.controls) {
		return nil, fmt.Errorf("stack: no controlsvc instance %d (have %d)", i, len(st.controls))
	}
	return st.controls[i], nil
}

// ControlsvcLog is the log name of instance i, for Log and LogTail.
func (st *Stack) ControlsvcLog(i int) string {
	if c, err := st.control(i); err == nil {
		return c.name
	}
	return ""
}

// StartControlsvcAt starts instance i (stopped, killed or never started) on its address and
// waits for /readyz. Its log is appended to, so a restart keeps the history.
func (st *Stack) StartControlsvcAt(ctx context.Context, i int) error {
	c, err := st.control(i)
	if err != nil {
		return err
	}
	if c.proc != nil && !c.proc.exited() {
		return fmt.Errorf("stack: %s is still running", c.name)
	}
	if c.proc != nil {
		c.proc.log.Close()
		st.forget(c.proc)
	}
	restart := c.proc != nil
	p, err := st.startLogged(c.name, st.opts, c.env, "", restart, st.opts.ControlsvcBin)
	if err != nil {
		return err
	}
	c.proc = p
	if err := waitHTTP(ctx, c.url+"/readyz", 200); err != nil {
		return fmt.Errorf("%s not ready: %w\n%s", c.name, err, st.LogTail(c.name))
	}
	return nil
}

// SignalControlsvcAt sends sig to instance i and returns at once; the channel closes when
// the process has exited (e.g. SIGTERM: its graceful shutdown is under way meanwhile).
func (st *Stack) SignalControlsvcAt(i int, sig os.Signal) (<-chan struct{}, error) {
	c, err := st.control(i)
	if err != nil {
		return nil, err
	}
	if c.proc == nil || c.proc.exited() {
		return nil, fmt.Errorf("stack: %s is not running", c.name)
	}
	if err := c.proc.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("signalling %s: %w", c.name, err)
	}
	return c.proc.done, nil
}

// KillControlsvcAt ends instance i with SIGKILL, as a crash would: no graceful shutdown, no
// flushing, connections reset. It returns once the process is gone.
func (st *Stack) KillControlsvcAt(i int) error {
	done, err := st.SignalControlsvcAt(i, syscall.SIGKILL)
	if err != nil {
		return err
	}
	<-done
	return nil
}

// StopControlsvcAt stops instance i gracefully (SIGTERM) and waits for it to exit, killing
// it after controlStopTimeout.
func (st *Stack) StopControlsvcAt(i int) error {
	done, err := st.SignalControlsvcAt(i, syscall.SIGTERM)
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(controlStopTimeout):
		_ = st.KillControlsvcAt(i)
		return fmt.Errorf("stack: %s did not exit within %s of SIGTERM", st.controls[i].name, controlStopTimeout)
	}
}

// RestartControlsvcAt kills instance i if it still runs, then starts it again.
func (st *Stack) RestartControlsvcAt(ctx context.Context, i int) error {
	c, err := st.control(i)
	if err != nil {
		return err
	}
	if c.proc != nil && !c.proc.exited() {
		if err := st.KillControlsvcAt(i); err != nil {
			return err
		}
	}
	return st.StartControlsvcAt(ctx, i)
}

// KillControlsvc is KillControlsvcAt(0); it fails if the instance had already exited.
func (st *Stack) KillControlsvc() error {
	if len(st.controls) == 0 || st.controls[0].proc == nil {
		return errors.New("stack: controlsvc is not running")
	}
	return st.KillControlsvcAt(0)
}

// RestartControlsvc is RestartControlsvcAt(0).
func (st *Stack) RestartControlsvc(ctx context.Context) error { return st.RestartControlsvcAt(ctx, 0) }

// forget drops c from the processes Stop ends.
func (st *Stack) forget(c *child) {
	for i, p := range st.procs {
		if p == c {
			st.procs = append(st.procs[:i], st.procs[i+1:]...)
			break
		}
	}
}

// SetControlsvcEnvAt sets environment variables ("NAME=value") of instance i for its next
// start, replacing earlier values of the same names; "NAME=" removes NAME. The running
// process is not touched: restart it to apply them.
func (st *Stack) SetControlsvcEnvAt(i int, kv ...string) error {
	c, err := st.control(i)
	if err != nil {
		return err
	}
	for _, entry := range kv {
		name, value, ok := strings.Cut(entry, "=")
		if !ok {
			return fmt.Errorf("stack: %q is not NAME=value", entry)
		}
		kept := c.env[:0:0]
		for _, e := range c.env {
			if !strings.HasPrefix(e, name+"=") {
				kept = append(kept, e)
			}
		}
		if value != "" {
			kept = append(kept, entry)
		}
		c.env = kept
	}
	return nil
}
