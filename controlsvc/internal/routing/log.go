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
	out := make(map[string][]Entry)
	if len(requestIDs) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringSliceCmd, len(requestIDs))
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range requestIDs {
			cmds[i] = p.LRange(ctx, Key(id), 0, MaxEntries-1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading routing entries: %w", err)
	}
	for i, id := range requestIDs {
		raw := cmds[i].Val()
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
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range requestIDs {
			p.Del(ctx, Key(id))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting routing entries: %w", err)
	}
	return nil
}
