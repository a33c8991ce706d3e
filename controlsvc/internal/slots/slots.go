// Package slots keeps concurrency slots in Redis as leases: one sorted set per user or
// account (member = grant id, score = lease expiry in Redis TIME milliseconds), so a crashed
// gateway cannot hold slots for longer than one lease TTL. See docs/design.md, "Redis".
package slots

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/luapipe"
)

// Kinds of slot sets.
const (
	KindUser    = "user"
	KindAccount = "account"
)

// ErrUnknownKind is returned for a kind other than KindUser or KindAccount.
var ErrUnknownKind = errors.New("unknown slot kind")

var (
	//go:embed renew.lua
	renewLua    string
	renewScript = redis.NewScript(renewLua)
)

// Slots enters, renews, releases and loads leases (and the wait queues, wait.go).
type Slots struct {
	rdb   redis.UniversalClient
	ttlMs int64
}

// New returns Slots whose leases live for ttl unless renewed (rounded to whole
// milliseconds, at least one).
func New(rdb redis.UniversalClient, ttl time.Duration) *Slots {
	ms := ttl.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return &Slots{rdb: rdb, ttlMs: ms}
}

// Key returns the Redis key of a slot set. The hash tag keeps each set in one Redis
// Cluster slot.
func Key(kind string, id int64) (string, error) {
	switch kind {
	case KindUser:
		return "pg:{u:" + strconv.FormatInt(id, 10) + "}:slots", nil
	case KindAccount:
		return "pg:{a:" + strconv.FormatInt(id, 10) + "}:slots", nil
	default:
		return "", fmt.Errorf("%w %q", ErrUnknownKind, kind)
	}
}

// Release drops grantID's lease in the set of (kind, id) and wakes the set's waiters, if
// any; releasing a lease that does not exist is not an error, so releases can be repeated.
func (s *Slots) Release(ctx context.Context, kind string, id int64, grantID string) error {
	if err := s.ReleaseMany(ctx, []Lease{{Kind: kind, ID: id, GrantID: grantID}}); err != nil {
		return fmt.Errorf("releasing %s slot %d: %w", kind, id, err)
	}
	return nil
}

// ReleaseHeld is Release that also reports whether grantID held a lease in the set (an
// expired lease not yet purged counts): a re-admission checks with it that its failed
// attempt's account is its grant's.
func (s *Slots) ReleaseHeld(ctx context.Context, kind string, id int64, grantID string) (bool, error) {
	ops, err := leaveOps([]Lease{{Kind: kind, ID: id, GrantID: grantID}})
	if err != nil {
		return false, err
	}
	cmds, err := s.runOps(ctx, ops, nil)
	if err == nil && len(cmds) != 1 {
		err = fmt.Errorf("%d replies to one release", len(cmds))
	}
	if err != nil {
		return false, fmt.Errorf("releasing %s slot %d: %w", kind, id, err)
	}
	n, err := cmds[0].Int64()
	if err != nil {
		return false, fmt.Errorf("releasing %s slot %d: %w", kind, id, err)
	}
	return n > 0, nil
}

// ReleaseMany drops many leases (and queue entries of the same grants) in one pipelined
// round trip: one script call per set, each on a single hash tag, so it works on Redis
// Cluster too; a set with waiters announces the release on FreedChannel. Releasing a lease
// that does not exist is not an error. Leases of an unknown kind fail the call before
// anything is sent.
func (s *Slots) ReleaseMany(ctx context.Context, leases []Lease) error {
	if len(leases) == 0 {
		return nil
	}
	var r *Release
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		r = s.QueueRelease(ctx, p, leases)
		return nil
	}) // each call's outcome is in its reply: Release.Err
	return r.Err(ctx)
}

// Release is ReleaseMany queued on a caller's pipeline (QueueRelease); Err reads its
// outcome once the pipeline ran.
type Release struct {
	rdb    redis.UniversalClient
	leases int
	calls  []*luapipe.Call
	err    error // refused before anything was queued
}

// QueueRelease queues ReleaseMany's script calls on p, so that a report batch releases its
// slots in the round trip of its other reads. Leases of an unknown kind queue nothing.
func (s *Slots) QueueRelease(ctx context.Context, p redis.Pipeliner, leases []Lease) *Release {
	r := &Release{rdb: s.rdb, leases: len(leases)}
	ops, err := leaveOps(leases)
	if err != nil {
		r.err = err
		return r
	}
	r.calls = make([]*luapipe.Call, len(ops))
	for i, o := range ops {
		r.calls[i] = luapipe.Queue(ctx, p, o.script, o.keys, o.args...)
	}
	return r
}

// Err is the queued release's outcome, after its pipeline ran. Calls Redis refused with
// NOSCRIPT (a restarted or flushed server) are re-sent, alone: the others ran.
func (r *Release) Err(ctx context.Context) error {
	if r == nil {
		return nil
	}
	err := r.err
	if err == nil {
		err = luapipe.Resend(ctx, r.rdb, r.calls)
	}
	for _, c := range r.calls {
		if err != nil {
			break
		}
		err = c.Cmd().Err()
	}
	if err != nil {
		return fmt.Errorf("releasing %d leases: %w", r.leases, err)
	}
	return nil
}

// RenewLease re-arms grantID's lease in the set of (kind, id) if it still exists, and
// reports whether it did; it never creates a lease (an expired lease stays expired).
func (s *Slots) RenewLease(ctx context.Context, kind string, id int64, grantID string) (bool, error) {
	key, err := Key(kind, id)
	if err != nil {
		return false, err
	}
	n, err := renewScript.Run(ctx, s.rdb, []string{key}, grantID, s.ttlMs).Int64()
	if err != nil {
		return false, fmt.Errorf("renewing %s slot %d: %w", kind, id, err)
	}
	return n == 1, nil
}

// Acquisition asks for a lease of grant GrantID in the set of (Kind, ID) under Limit.
type Acquisition struct {
	Kind    string
	ID      int64
	GrantID string
	Limit   int
}

// Lease names one lease: grant GrantID in the set of (Kind, ID).
type Lease struct {
	Kind    string
	ID      int64
	GrantID string
}

// RenewMany is RenewLease for many leases in one pipelined round trip; renewed[i] reports
// whether leases[i] existed (and was re-armed).
func (s *Slots) RenewMany(ctx context.Context, leases []Lease) (renewed []bool, err error) {
	calls := make([]scriptCall, len(leases))
	for i, l := range leases {
		k, err := Key(l.Kind, l.ID)
		if err != nil {
			return nil, err
		}
		calls[i] = scriptCall{key: k, args: []any{l.GrantID, s.ttlMs}}
	}
	cmds, err := s.runPipelined(ctx, renewScript, calls)
	if err != nil {
		return nil, fmt.Errorf("renewing leases: %w", err)
	}
	renewed = make([]bool, len(cmds))
	for i, cmd := range cmds {
		n, err := cmd.Int64()
		if err != nil {
			return nil, fmt.Errorf("renewing %s slot %d: %w", leases[i].Kind, leases[i].ID, err)
		}
		renewed[i] = n == 1
	}
	return renewed, nil
}

// scriptCall is one invocation of a script on one key.
type scriptCall struct {
	key  string
	args []any
}

// runPipelined runs script once per call in one pipeline. EVALSHA cannot fall back to EVAL
// inside a pipeline, so on NOSCRIPT (a fresh or flushed server) it loads the script and
// retries once.
func (s *Slots) runPipelined(ctx context.Context, script *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	cmds, err := s.pipeline(ctx, script, calls)
	if isNoScript(err) {
		if err := script.Load(ctx, s.rdb).Err(); err != nil {
			return nil, fmt.Errorf("loading script: %w", err)
		}
		cmds, err = s.pipeline(ctx, script, calls)
	}
	return cmds, err
}

func (s *Slots) pipeline(ctx context.Context, script *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = script.EvalSha(ctx, p, []string{c.key}, c.args...)
		}
		return nil
	})
	return cmds, err
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}
