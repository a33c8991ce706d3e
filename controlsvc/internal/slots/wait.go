package slots

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// FreedChannel is the Redis channel on which a release or a departing waiter announces that
// a queue may move. The message is the set's Tag; it is published only when the set has
// waiters. Every controlsvc instance subscribes once and wakes its local waiters of that set.
const FreedChannel = "pg:slots:freed"

// Results of Enter.
const (
	Held    = 1  // the grant holds a lease
	Queued  = 0  // the grant waits in the set's queue
	Refused = -1 // neither: the queue is full, or queueing was not allowed and it is not its turn
)

var (
	//go:embed enter.lua
	enterLua    string
	enterScript = redis.NewScript(enterLua)

	//go:embed leave.lua
	leaveLua    string
	leaveScript = redis.NewScript(leaveLua)

	//go:embed load.lua
	loadLua    string
	loadScript = redis.NewScript(loadLua)
)

// allScripts are loaded together when Redis answers NOSCRIPT inside a pipeline.
var allScripts = []*redis.Script{renewScript, enterScript, leaveScript, loadScript}

// Tag is the hash tag of the sets of (kind, id) without braces, e.g. "u:42"; it is also the
// message on FreedChannel.
func Tag(kind string, id int64) (string, error) {
	switch kind {
	case KindUser:
		return "u:" + strconv.FormatInt(id, 10), nil
	case KindAccount:
		return "a:" + strconv.FormatInt(id, 10), nil
	default:
		return "", fmt.Errorf("%w %q", ErrUnknownKind, kind)
	}
}

// setKeys returns the slot set, its wait queue and its waiters' expiry set: one hash tag.
func setKeys(kind string, id int64) ([]string, error) {
	tag, err := Tag(kind, id)
	if err != nil {
		return nil, err
	}
	p := "pg:{" + tag + "}:"
	return []string{p + "slots", p + "wait", p + "waitexp"}, nil
}

// Entry asks for a lease of GrantID in the set of (Kind, ID) under Limit, in FIFO order
// behind the set's waiters, queueing when it is not its turn and fewer than MaxWaiters wait
// (MaxWaiters <= 0: never queue). A queue entry lives for WaitTTL unless the grant takes a
// slot or leaves first.
type Entry struct {
	Kind       string
	ID         int64
	GrantID    string
	Limit      int
	MaxWaiters int
	WaitTTL    time.Duration
}

// Load is what a set holds now: live leases and live waiters.
type Load struct {
	Active  int64
	Waiting int64
}

// op is one script call in a pipeline.
type op struct {
	script *redis.Script
	keys   []string
	args   []any
}

// Enter runs one Entry: Held, Queued or Refused. A Limit <= 0 is Refused without Redis.
func (s *Slots) Enter(ctx context.Context, e Entry) (int, error) {
	res, _, err := s.EnterAndLoad(ctx, []Entry{e}, "", nil, nil)
	if err != nil {
		return 0, err
	}
	return res[0], nil
}

// EnterAndLoad runs the entries and reads the loads of loadIDs (sets of loadKind) in one
// pipelined round trip; extra, if not nil, adds commands of the caller to the same pipeline
// (their results are in the caller's Cmd values). Every script touches the keys of one
// hash tag only, so it works on Redis Cluster.
func (s *Slots) EnterAndLoad(ctx context.Context, entries []Entry, loadKind string, loadIDs []int64,
	extra func(redis.Pipeliner)) (results []int, loads map[int64]Load, err error) {
	ops := make([]op, 0, len(entries)+len(loadIDs))
	idx := make([]int, len(entries)) // index in ops, -1 when answered without Redis
	results = make([]int, len(entries))
	for i, e := range entries {
		keys, err := setKeys(e.Kind, e.ID)
		if err != nil {
			return nil, nil, err
		}
		if e.Limit <= 0 {
			idx[i], results[i] = -1, Refused
			continue
		}
		wttl := e.WaitTTL.Milliseconds()
		if wttl < 1 {
			wttl = 1
		}
		idx[i] = len(ops)
		ops = append(ops, op{enterScript, keys, []any{e.GrantID, e.Limit, s.ttlMs, e.MaxWaiters, wttl}})
	}
	firstLoad := len(ops)
	for _, id := range loadIDs {
		keys, err := setKeys(loadKind, id)
		if err != nil {
			return nil, nil, err
		}
		ops = append(ops, op{script: loadScript, keys: keys})
	}
	cmds, err := s.runOps(ctx, ops, extra)
	if err != nil {
		return nil, nil, fmt.Errorf("entering slot queues: %w", err)
	}
	for i := range entries {
		if idx[i] < 0 {
			continue
		}
		n, err := cmds[idx[i]].Int64()
		if err != nil {
			return nil, nil, fmt.Errorf("entering %s slot %d: %w", entries[i].Kind, entries[i].ID, err)
		}
		results[i] = int(n)
	}
	loads = make(map[int64]Load, len(loadIDs))
	for i, id := range loadIDs {
		l, err := readLoad(cmds[firstLoad+i])
		if err != nil {
			return nil, nil, fmt.Errorf("loading %s slot %d: %w", loadKind, id, err)
		}
		loads[id] = l
	}
	return results, loads, nil
}

// Loads returns the live leases and waiters of each id's set, in one round trip.
func (s *Slots) Loads(ctx context.Context, kind string, ids []int64) (map[int64]Load, error) {
	_, loads, err := s.EnterAndLoad(ctx, nil, kind, ids, nil)
	return loads, err
}

func readLoad(cmd *redis.Cmd) (Load, error) {
	vals, err := cmd.Int64Slice()
	if err != nil {
		return Load{}, err
	}
	if len(vals) != 2 {
		return Load{}, fmt.Errorf("load script answered %d values", len(vals))
	}
	return Load{Active: vals[0], Waiting: vals[1]}, nil
}

// Leave removes grantID from the set of (kind, id), as a lease and as a waiter, and wakes
// the set's waiters if it has any. Leaving twice is harmless.
func (s *Slots) Leave(ctx context.Context, kind string, id int64, grantID string) error {
	return s.ReleaseMany(ctx, []Lease{{Kind: kind, ID: id, GrantID: grantID}})
}

// leaveOps groups leases by set: one leave script call per set, each on one hash tag.
func leaveOps(leases []Lease) ([]op, error) {
	byTag := make(map[string]int, len(leases))
	var ops []op
	for _, l := range leases {
		tag, err := Tag(l.Kind, l.ID)
		if err != nil {
			return nil, err
		}
		i, ok := byTag[tag]
		if !ok {
			keys, _ := setKeys(l.Kind, l.ID)
			i = len(ops)
			byTag[tag] = i
			ops = append(ops, op{script: leaveScript, keys: keys, args: []any{FreedChannel, tag}})
		}
		ops[i].args = append(ops[i].args, l.GrantID)
	}
	return ops, nil
}

// runOps runs ops (and extra) in one pipeline. EVALSHA cannot fall back to EVAL inside a
// pipeline, so on NOSCRIPT (a fresh or flushed server) it loads every script and retries once.
func (s *Slots) runOps(ctx context.Context, ops []op, extra func(redis.Pipeliner)) ([]*redis.Cmd, error) {
	if len(ops) == 0 && extra == nil {
		return nil, nil
	}
	run := func() ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, len(ops))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, o := range ops {
				cmds[i] = o.script.EvalSha(ctx, p, o.keys, o.args...)
			}
			if extra != nil {
				extra(p)
			}
			return nil
		})
		if err == redis.Nil {
			err = nil // a GET of the caller found nothing; its Cmd says so
		}
		return cmds, err
	}
	cmds, err := run()
	if isNoScript(err) || anyNoScript(cmds) {
		for _, sc := range allScripts {
			if err := sc.Load(ctx, s.rdb).Err(); err != nil {
				return nil, fmt.Errorf("loading script: %w", err)
			}
		}
		cmds, err = run()
	}
	return cmds, err
}

func anyNoScript(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if c != nil && isNoScript(c.Err()) {
			return true
		}
	}
	return false
}
