package holds

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Get returns the hold of one request of a user; ok is false when it holds nothing (never
// held, settled, released or lost with Redis).
func (h *Holds) Get(ctx context.Context, userID int64, requestID string) (Ref, bool, error) {
	k := Key{UserID: userID, RequestID: requestID}
	held, _, err := h.Lookup(ctx, []Key{k})
	if err != nil {
		return Ref{}, false, err
	}
	r, ok := held[k]
	return r, ok, nil
}

// Held is what the holds of one user keep on its wallets, for the admin views and tests.
type Held struct {
	Balance int64           // on the balance (balance mode)
	Keys    map[int64]int64 // per key with a quota
	Groups  map[int64]int64 // per group billed by subscription
	Holds   int             // the user's holds
}

// HeldOf sums the user's wallets' holds (a SCAN of the user's keys: admin and test use, not
// the hot path).
func (h *Holds) HeldOf(ctx context.Context, userID int64) (Held, error) {
	out := Held{Keys: map[int64]int64{}, Groups: map[int64]int64{}}
	p := prefix(userID)
	var names []string
	iter := h.rdb.Scan(ctx, 0, strings.ReplaceAll(strings.ReplaceAll(p, "{", `\{`), "}", `\}`)+"*", 200).Iterator()
	for iter.Next(ctx) {
		names = append(names, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return out, fmt.Errorf("listing the holds of user %d: %w", userID, err)
	}
	cmds := map[string]*redis.StringCmd{}
	_, err := h.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, n := range names {
			rest := strings.TrimPrefix(n, p)
			if strings.HasPrefix(rest, "h:") {
				out.Holds++
				continue
			}
			if isWallet(rest) {
				cmds[rest] = pl.HGet(ctx, n, "held")
			}
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return out, fmt.Errorf("reading the holds of user %d: %w", userID, err)
	}
	for rest, c := range cmds {
		v, _ := c.Int64()
		switch {
		case rest == "bal":
			out.Balance = v
		case strings.HasPrefix(rest, "k"):
			id, _ := strconv.ParseInt(rest[1:], 10, 64)
			out.Keys[id] = v
		case strings.HasPrefix(rest, "g"):
			id, _ := strconv.ParseInt(rest[1:], 10, 64)
			out.Groups[id] = v
		}
	}
	return out, nil
}

// Sum is everything the user's holds keep: balance, keys and subscriptions.
func (h Held) Sum() int64 {
	s := h.Balance
	for _, v := range h.Keys {
		s += v
	}
	for _, v := range h.Groups {
		s += v
	}
	return s
}

// isWallet says whether a key's name after the user's prefix is a wallet's: "bal", "k<id>"
// or "g<id>" (the user's slot set shares the prefix).
func isWallet(rest string) bool {
	if rest == "bal" {
		return true
	}
	if len(rest) < 2 || (rest[0] != 'k' && rest[0] != 'g') {
		return false
	}
	_, err := strconv.ParseInt(rest[1:], 10, 64)
	return err == nil
}

// Wallet names one wallet copy: the user's balance (Kind "bal"), a key's quota ("k", ID =
// key id) or a group's subscription ("g", ID = group id; SubscriptionID, when set, counts
// the wallet only while it is that subscription's).
type Wallet struct {
	UserID         int64
	Kind           string
	ID             int64
	SubscriptionID int64
}

// HeldOn reads what the holds keep on each wallet, in one pipelined round trip (the admin
// views: O(1) per row).
func (h *Holds) HeldOn(ctx context.Context, ws []Wallet) ([]int64, error) {
	out := make([]int64, len(ws))
	if len(ws) == 0 {
		return out, nil
	}
	cmds := make([]*redis.SliceCmd, len(ws))
	_, err := h.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, w := range ws {
			name := prefix(w.UserID) + w.Kind
			if w.Kind != "bal" {
				name += strconv.FormatInt(w.ID, 10)
			}
			cmds[i] = pl.HMGet(ctx, name, "held", "sid")
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("reading held amounts of %d wallets: %w", len(ws), err)
	}
	for i, w := range ws {
		v := cmds[i].Val()
		if len(v) != 2 || v[0] == nil {
			continue
		}
		if w.SubscriptionID != 0 && v[1] != strconv.FormatInt(w.SubscriptionID, 10) {
			continue
		}
		s, _ := v[0].(string)
		out[i], _ = strconv.ParseInt(s, 10, 64)
	}
	return out, nil
}
