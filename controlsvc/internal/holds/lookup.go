package holds

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Ref is a hold as settlement reads it.
type Ref struct {
	UserID         int64 // the holder: the report's user unless the request id is another's
	KeyID          int64
	GroupID        int64
	BillingMode    string
	SubscriptionID int64
	KeyQuota       bool
	AmountMicros   int64
}

// Key names a request's hold: the user it was admitted for and its request id.
type Key struct {
	UserID    int64
	RequestID string
}

// Lookup reads the holds of a report batch in one pipelined round trip; a request without
// a hold is absent. lostRecently says whether Redis lost its holds less than one hold life
// ago (GrantedWithoutHold): a request admitted before that has no hold but a grant.
func (h *Holds) Lookup(ctx context.Context, keys []Key) (held map[Key]Ref, lostRecently bool, err error) {
	var l *Lookup
	_, _ = h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		l = h.QueueLookup(ctx, p, keys)
		return nil
	}) // each command's outcome is in its reply: Lookup.Result
	return l.Result(ctx)
}

// Lookup is Holds.Lookup queued on a caller's pipeline (QueueLookup); Result reads its
// outcome once the pipeline ran.
type Lookup struct {
	h      *Holds
	keys   []Key
	epoch  *redis.StringCmd
	cmds   []*redis.SliceCmd
	owners []*redis.StringCmd
}

// QueueLookup queues Lookup's reads on p, so that a report batch reads its holds in the
// round trip of its other reads.
func (h *Holds) QueueLookup(ctx context.Context, p redis.Pipeliner, keys []Key) *Lookup {
	l := &Lookup{h: h, keys: keys, cmds: make([]*redis.SliceCmd, len(keys)), owners: make([]*redis.StringCmd, len(keys))}
	l.epoch = p.Get(ctx, epochKey)
	for i, k := range keys {
		l.cmds[i] = p.HMGet(ctx, holdKey(k.UserID, k.RequestID), holdFields...)
		l.owners[i] = p.Get(ctx, holderKey(k.RequestID))
	}
	return l
}

// Result is Lookup's answer from the queued reads, after their pipeline ran. A request held
// by another user than its report names, and a lost epoch mark, cost one more round trip
// each (rare).
func (l *Lookup) Result(ctx context.Context) (held map[Key]Ref, lostRecently bool, err error) {
	if err := l.err(); err != nil {
		return nil, false, fmt.Errorf("reading holds of %d reports: %w", len(l.keys), err)
	}
	h := l.h
	held = make(map[Key]Ref, len(l.keys))
	// A request held by another user than its report names: read that user's hold (rare).
	for i, k := range l.keys {
		owner, err := l.owners[i].Int64()
		if err != nil || owner == k.UserID {
			continue
		}
		if r, ok := parseRef(h.rdb.HMGet(ctx, holdKey(owner, k.RequestID), holdFields...).Val()); ok {
			r.UserID = owner
			held[k] = r
		}
	}
	for i, k := range l.keys {
		if r, ok := parseRef(l.cmds[i].Val()); ok {
			r.UserID = k.UserID
			held[k] = r
		}
	}
	since, err := l.epoch.Int64()
	if err != nil { // gone: Redis lost its data since controlsvc marked it
		since = time.Now().UnixMilli()
		h.rdb.SetNX(ctx, epochKey, since, 0)
	}
	lostRecently = since > 0 && time.Since(time.UnixMilli(since)) < h.ttl
	return held, lostRecently, nil
}

// err is the first failed read; a key that does not exist is no failure.
func (l *Lookup) err() error {
	if err := l.epoch.Err(); err != nil && err != redis.Nil {
		return err
	}
	for i := range l.keys {
		if err := l.cmds[i].Err(); err != nil {
			return err
		}
		if err := l.owners[i].Err(); err != nil && err != redis.Nil {
			return err
		}
	}
	return nil
}

var holdFields = []string{"k", "g", "m", "s", "q", "a"}

func parseRef(v []any) (Ref, bool) {
	if len(v) != len(holdFields) || v[0] == nil {
		return Ref{}, false
	}
	s := func(j int) string { x, _ := v[j].(string); return x }
	num := func(j int) int64 { n, _ := strconv.ParseInt(s(j), 10, 64); return n }
	mode := store.BillingBalance
	if s(2) == "s" {
		mode = store.BillingSubscription
	}
	return Ref{KeyID: num(0), GroupID: num(1), BillingMode: mode, SubscriptionID: num(3),
		KeyQuota: s(4) == "1", AmountMicros: num(5)}, true
}

// MarkEpoch records, at start, that Redis keeps the holds from now on; a Redis that has the
// mark already keeps it. A Redis that loses its data loses the mark, and Lookup then treats
// requests without a hold as granted for one hold life (docs/billing.md).
func (h *Holds) MarkEpoch(ctx context.Context) error {
	if err := h.rdb.SetNX(ctx, epochKey, 0, 0).Err(); err != nil {
		return fmt.Errorf("marking the holds epoch: %w", err)
	}
	return nil
}

// Invalidate marks wallet copies for reload after an admin change in PostgreSQL: the
// user's balance wallet, and the given keys' and groups' wallets. Their holds stay.
func (h *Holds) Invalidate(ctx context.Context, userID int64, keyIDs, groupIDs []int64) error {
	p := prefix(userID)
	_, err := h.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.HDel(ctx, p+"bal", "ok", "tok") // the token too: a load in flight read the old state
		for _, k := range keyIDs {
			pl.HDel(ctx, p+"k"+strconv.FormatInt(k, 10), "ok")
		}
		for _, g := range groupIDs {
			pl.HDel(ctx, p+"g"+strconv.FormatInt(g, 10), "ok")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("invalidating wallets of user %d: %w", userID, err)
	}
	return nil
}
