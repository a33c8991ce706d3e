package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/redis/go-redis/v9"
)

// Log is the Redis side of the explanations: one list per request that is not settled yet,
// one JSON Entry per element, in admission order.
type Log struct {
	rdb redis.UniversalClient
}

// NewLog returns the log on rdb; it does no I/O.
func NewLog(rdb redis.UniversalClient) *Log {
	return &Log{rdb: rdb}
}

// Key is the Redis list of a request's entries. The hash tag keeps the key in one slot.
func Key(requestID string) string {
	return "pg:{r:" + requestID + "}:route"
}

// Read returns the entries of a request not settled yet; nil when there are none.
func (l *Log) Read(ctx context.Context, requestID string) ([]Entry, error) {
	m, err := l.ReadMany(ctx, []string{requestID})
	if err != nil {
		return nil, err
	}
	return m[requestID], nil
}

// ReadMany returns the entries of each request that has some, in one pipelined round trip,
// ordered by admission time (an entry is written after its grant is answered, so a quick
// re-admission may land first). An element that does not decode is skipped.
func (l *Log) ReadMany(ctx context.Context, requestIDs []string) (map[string][]Entry, error) {
	if len(requestIDs) == 0 {
		return map[string][]Entry{}, nil
	}
	var r *Read
	_, _ = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		r = l.QueueRead(ctx, p, requestIDs)
		return nil
	}) // each command's outcome is in its reply: Read.Entries
	return r.Entries()
}

// Read is ReadMany queued on a caller's pipeline (QueueRead); Entries reads its outcome
// once the pipeline ran.
type Read struct {
	ids  []string
	cmds []*redis.StringSliceCmd
}

// QueueRead queues ReadMany's commands on p, so that a report batch reads its explanations
// in the round trip of its other reads.
func (l *Log) QueueRead(ctx context.Context, p redis.Pipeliner, requestIDs []string) *Read {
	r := &Read{ids: requestIDs, cmds: make([]*redis.StringSliceCmd, len(requestIDs))}
	for i, id := range requestIDs {
		r.cmds[i] = p.LRange(ctx, Key(id), 0, MaxEntries-1)
	}
	return r
}

// Entries is ReadMany's answer from the queued read, after its pipeline ran.
func (r *Read) Entries() (map[string][]Entry, error) {
	out := make(map[string][]Entry)
	if r == nil {
		return out, nil
	}
	for i, id := range r.ids {
		raw, err := r.cmds[i].Result()
		if err != nil {
			return nil, fmt.Errorf("reading routing entries: %w", err)
		}
		if len(raw) == 0 {
			continue
		}
		es := make([]Entry, 0, len(raw))
		for _, r := range raw {
			var e Entry
			if json.Unmarshal([]byte(r), &e) == nil {
				es = append(es, e)
			}
		}
		sort.SliceStable(es, func(a, b int) bool { return es[a].At.Before(es[b].At) })
		out[id] = es
	}
	return out, nil
}

// Delete drops the lists of settled requests, in one round trip.
func (l *Log) Delete(ctx context.Context, requestIDs []string) error {
	if len(requestIDs) == 0 {
		return nil
	}
	var d *Deletion
	_, _ = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		d = l.QueueDelete(ctx, p, requestIDs)
		return nil
	}) // each command's outcome is in its reply: Deletion.Err
	return d.Err()
}

// Deletion is Delete queued on a caller's pipeline (QueueDelete); Err reads its outcome once
// the pipeline ran.
type Deletion struct {
	cmds []*redis.IntCmd
}

// QueueDelete queues Delete's commands on p, so that a report batch drops its settled
// explanations in the round trip of its other writes.
func (l *Log) QueueDelete(ctx context.Context, p redis.Pipeliner, requestIDs []string) *Deletion {
	d := &Deletion{cmds: make([]*redis.IntCmd, len(requestIDs))}
	for i, id := range requestIDs {
		d.cmds[i] = p.Del(ctx, Key(id))
	}
	return d
}

// Err is the queued deletion's outcome, after its pipeline ran.
func (d *Deletion) Err() error {
	if d == nil {
		return nil
	}
	for _, c := range d.cmds {
		if err := c.Err(); err != nil {
			return fmt.Errorf("deleting routing entries: %w", err)
		}
	}
	return nil
}
