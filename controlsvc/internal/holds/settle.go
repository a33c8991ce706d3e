package holds

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/luapipe"
)

// Charge is one settled request to apply to the wallet copies.
type Charge struct {
	RequestID string
	UserID    int64
	KeyID     int64
	GroupID   int64
	// CostMicros is what PostgreSQL charged; Replay: the request was settled before (its
	// record existed), so its hold is only released.
	CostMicros int64
	Replay     bool
}

// Settle applies charges PostgreSQL committed to the wallet copies and releases their
// holds: one Lua call per user, all in one pipelined round trip. A failure leaves the copies
// stale until their refresh and the holds until the sweeper (docs/billing.md bounds both).
func (h *Holds) Settle(ctx context.Context, charges []Charge) error {
	if len(charges) == 0 {
		return nil
	}
	var st *Settlement
	_, _ = h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		st = h.QueueSettle(ctx, p, charges)
		return nil
	}) // each call's outcome is in its reply: Settlement.Err
	return st.Err(ctx)
}

// Settlement is Settle queued on a caller's pipeline (QueueSettle); Err reads its outcome
// once the pipeline ran.
type Settlement struct {
	rdb   redis.UniversalClient
	calls []*luapipe.Call
}

// QueueSettle queues Settle's script calls on p, in user order, so that a report batch
// settles its holds in the round trip of its other writes after its transaction.
func (h *Holds) QueueSettle(ctx context.Context, p redis.Pipeliner, charges []Charge) *Settlement {
	byUser := map[int64][]any{}
	for _, c := range charges {
		cost := max(c.CostMicros, 0)
		if c.Replay {
			cost = -1
		}
		byUser[c.UserID] = append(byUser[c.UserID], c.RequestID, cost, c.KeyID, c.GroupID, member(c.UserID, c.RequestID))
	}
	users := make([]int64, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	slices.Sort(users)
	st := &Settlement{rdb: h.rdb, calls: make([]*luapipe.Call, len(users))}
	for i, u := range users {
		st.calls[i] = luapipe.Queue(ctx, p, settleScript, []string{indexKey}, append([]any{prefix(u)}, byUser[u]...)...)
	}
	return st
}

// Err is the queued settlement's outcome, after its pipeline ran. Calls Redis refused with
// NOSCRIPT (a restarted or flushed server) are re-sent, alone: the others ran, and a
// settlement must not run twice (a second run finds no hold and marks the wallets for
// reload).
func (st *Settlement) Err(ctx context.Context) error {
	if st == nil || len(st.calls) == 0 {
		return nil
	}
	err := luapipe.Resend(ctx, st.rdb, st.calls)
	for _, c := range st.calls {
		if err != nil {
			break
		}
		err = c.Cmd().Err()
	}
	if err != nil {
		return fmt.Errorf("applying holds of %d users: %w", len(st.calls), err)
	}
	return nil
}

// Release gives back the holds of requests of one user without charging (a refused or
// abandoned admission) and returns how many it released.
func (h *Holds) Release(ctx context.Context, userID int64, requestIDs ...string) (int, error) {
	args := []any{prefix(userID), 0}
	for _, id := range requestIDs {
		args = append(args, id, member(userID, id))
	}
	n, err := releaseScript.Run(ctx, h.rdb, []string{indexKey}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("releasing holds of user %d: %w", userID, err)
	}
	return n, nil
}

// sweepBatch bounds one round of ReleaseExpired; it loops until nothing is due.
const sweepBatch = 500

// ReleaseExpired releases every hold whose expiry passed before now (its report never came:
// a crashed gateway) and returns how many. Safe in every controlsvc at once: the release
// script deletes a hold once.
func (h *Holds) ReleaseExpired(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		due, err := h.rdb.ZRangeByScore(ctx, indexKey, &redis.ZRangeBy{Min: "-inf",
			Max: strconv.FormatInt(now.UnixMilli(), 10), Count: sweepBatch}).Result()
		if err != nil {
			return total, fmt.Errorf("finding expired holds: %w", err)
		}
		byUser := map[int64][]any{}
		for _, m := range due {
			u, id, ok := strings.Cut(m, "/")
			uid, err := strconv.ParseInt(u, 10, 64)
			if !ok || err != nil {
				h.rdb.ZRem(ctx, indexKey, m) // not ours: never due again
				continue
			}
			byUser[uid] = append(byUser[uid], id, m)
		}
		n := 0
		err = h.perUserCount(ctx, releaseScript, byUser, func(u int64, args []any) []any {
			return append([]any{prefix(u), now.UnixMilli()}, args...)
		}, &n)
		total += n
		if err != nil {
			return total, err
		}
		if len(due) < sweepBatch {
			return total, nil
		}
	}
}

// perUserCount runs script once per user in one pipeline and sums the integer replies.
func (h *Holds) perUserCount(ctx context.Context, script *redis.Script, byUser map[int64][]any,
	args func(int64, []any) []any, total *int) error {
	if len(byUser) == 0 {
		return nil
	}
	users := make([]int64, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	slices.Sort(users)
	run := func() ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, len(users))
		_, err := h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, u := range users {
				cmds[i] = script.EvalSha(ctx, p, []string{indexKey}, args(u, byUser[u])...)
			}
			return nil
		})
		return cmds, err
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err := script.Load(ctx, h.rdb).Err(); err != nil {
			return fmt.Errorf("loading holds script: %w", err)
		}
		cmds, err = run()
	}
	if err != nil {
		return fmt.Errorf("applying holds of %d users: %w", len(users), err)
	}
	for _, c := range cmds {
		n, _ := c.Int()
		*total += n
	}
	return nil
}
