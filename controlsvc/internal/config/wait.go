package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Wait queues (docs/design.md, "Redis"): the most waiters and the longest wait of each queue.
const (
	EnvUserWaitMax        = "POOLGATE_USER_WAIT_MAX"
	EnvUserWaitTimeout    = "POOLGATE_USER_WAIT_TIMEOUT"
	EnvStickyWaitMax      = "POOLGATE_STICKY_WAIT_MAX"
	EnvStickyWaitTimeout  = "POOLGATE_STICKY_WAIT_TIMEOUT"
	EnvAccountWaitMax     = "POOLGATE_ACCOUNT_WAIT_MAX"
	EnvAccountWaitTimeout = "POOLGATE_ACCOUNT_WAIT_TIMEOUT"
)

// Wait queue defaults (docs/design.md, "Redis"). A request whose user is at its
// concurrency waits in the user's queue; one whose accounts are all busy waits on its
// session's sticky account, or else on the least-loaded account.
const (
	DefaultUserWaitMax        = 20
	DefaultUserWaitTimeout    = 30 * time.Second
	DefaultStickyWaitMax      = 3
	DefaultStickyWaitTimeout  = 120 * time.Second
	DefaultAccountWaitMax     = 100
	DefaultAccountWaitTimeout = 30 * time.Second

	// MaxWaitTimeout bounds a queue's timeout: waits last seconds or minutes, and the plugin
	// must bound its admit call by the longest wait (its maxWait setting).
	MaxWaitTimeout = time.Hour
)

// WaitQueues are the limits of the wait queues: at most …Max waiters, each waiting at most
// …Timeout. A Max of 0 means no queue: a full set refuses at once.
type WaitQueues struct {
	UserMax        int
	UserTimeout    time.Duration
	StickyMax      int // on a session's sticky account
	StickyTimeout  time.Duration
	AccountMax     int // on the least-loaded account, when no sticky account applies
	AccountTimeout time.Duration
}

// DefaultWaitQueues are the documented defaults.
func DefaultWaitQueues() WaitQueues {
	return WaitQueues{
		UserMax: DefaultUserWaitMax, UserTimeout: DefaultUserWaitTimeout,
		StickyMax: DefaultStickyWaitMax, StickyTimeout: DefaultStickyWaitTimeout,
		AccountMax: DefaultAccountWaitMax, AccountTimeout: DefaultAccountWaitTimeout,
	}
}

// waitQueuesFromEnv reads the wait queue limits; every variable is optional.
func waitQueuesFromEnv() (WaitQueues, error) {
	w := DefaultWaitQueues()
	ints := []struct {
		name string
		dst  *int
	}{
		{EnvUserWaitMax, &w.UserMax},
		{EnvStickyWaitMax, &w.StickyMax},
		{EnvAccountWaitMax, &w.AccountMax},
	}
	for _, v := range ints {
		raw := strings.TrimSpace(os.Getenv(v.name))
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil {
			return WaitQueues{}, fmt.Errorf("%s: %q is not a whole number (e.g. 20)", v.name, raw)
		}
		*v.dst = n
	}
	durations := []struct {
		name string
		dst  *time.Duration
	}{
		{EnvUserWaitTimeout, &w.UserTimeout},
		{EnvStickyWaitTimeout, &w.StickyTimeout},
		{EnvAccountWaitTimeout, &w.AccountTimeout},
	}
	for _, v := range durations {
		raw := strings.TrimSpace(os.Getenv(v.name))
		if raw == "" {
			continue
		}
		d, err := time.ParseDuration(raw)
		if err != nil {
			return WaitQueues{}, fmt.Errorf("%s: %q is not a duration (e.g. 30s)", v.name, raw)
		}
		*v.dst = d
	}
	return w, nil
}

// validate fails on the first limit out of range, naming its variable.
func (w WaitQueues) validate() error {
	for _, m := range []struct {
		name string
		v    int
	}{{EnvUserWaitMax, w.UserMax}, {EnvStickyWaitMax, w.StickyMax}, {EnvAccountWaitMax, w.AccountMax}} {
		if m.v < 0 {
			return fmt.Errorf("%s: %d is negative, want 0 (no queue) or more", m.name, m.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{EnvUserWaitTimeout, w.UserTimeout}, {EnvStickyWaitTimeout, w.StickyTimeout}, {EnvAccountWaitTimeout, w.AccountTimeout}} {
		if d.v <= 0 || d.v > MaxWaitTimeout {
			return fmt.Errorf("%s: %s is out of range, want more than 0 and at most %s", d.name, d.v, MaxWaitTimeout)
		}
	}
	return nil
}

// Longest is the longest an admit call can wait in the queues: the user queue, then an
// account's (a sticky account's or the least-loaded one's, whichever is longer). The server's
// write bound of admit calls and the shutdown allowance are derived from it.
func (w WaitQueues) Longest() time.Duration {
	acc := w.StickyTimeout
	if w.AccountTimeout > acc {
		acc = w.AccountTimeout
	}
	return w.UserTimeout + acc
}
