// Package holds keeps the money held for requests in flight in Redis, next to the slots
// (docs/billing.md, "Reserve, then settle"): per user a balance wallet, per key a quota
// wallet and per group a subscription wallet, each a copy of what PostgreSQL (the source
// of truth) holds plus the sum of the live holds on it, and per request a hold. Admission
// checks the billing rules and holds in one Lua call; settlement charges PostgreSQL first and
// then the copies. Losing Redis loses holds and copies, never money: the copies reload.
package holds

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

var (
	//go:embed reserve.lua
	reserveLua    string
	reserveScript = redis.NewScript(reserveLua)

	//go:embed release.lua
	releaseLua    string
	releaseScript = redis.NewScript(releaseLua)

	//go:embed settle.lua
	settleLua    string
	settleScript = redis.NewScript(settleLua)
)

// DefaultRefresh is how long a wallet's copy is trusted before admission reloads it from
// PostgreSQL: it bounds how long a charge committed in PostgreSQL but never applied to
// Redis (controlsvc died in between) goes unseen by admission.
const DefaultRefresh = time.Minute

// indexKey is the sweeper's index of holds: member "user/request", score = expiry ms.
const indexKey = "pg:holds:due"

// epochKey marks since when Redis has kept its holds (ms); see GrantedWithoutHold.
const epochKey = "pg:holds:epoch"

// maxLoads bounds the loads one admission makes when settlements keep invalidating them.
const maxLoads = 3

// Loader reads the wallets' state from PostgreSQL (store.Store).
type Loader interface {
	LoadWallets(ctx context.Context, userID, keyID, groupID int64, now time.Time) (store.WalletState, error)
}

var _ Loader = (*store.Store)(nil)

// Holds reserves, settles and releases holds.
type Holds struct {
	rdb     redis.UniversalClient
	load    Loader
	ttl     time.Duration // a hold's life without its report (POOLGATE_RESERVATION_TTL)
	refresh time.Duration
	// Loads counts PostgreSQL loads (tests).
	onLoad func()
}

// New returns Holds whose holds live ttl without their report and whose wallet copies are
// reloaded after refresh (<= 0: DefaultRefresh).
func New(rdb redis.UniversalClient, load Loader, ttl, refresh time.Duration) *Holds {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	return &Holds{rdb: rdb, load: load, ttl: ttl, refresh: refresh}
}

// Request is one admission's hold request.
type Request struct {
	RequestID string
	UserID    int64
	KeyID     int64
	GroupID   int64
	Mode      string // the group's billing mode (store.BillingBalance | BillingSubscription)
	// KeyExpiresAt is the key's expiry (nil = never): an expired key is refused first.
	KeyExpiresAt *time.Time
	// AmountMicros is the estimate, already capped at the group's max_reserve (gateway);
	// MinAmountMicros the input estimate, below which the request is refused.
	AmountMicros    int64
	MinAmountMicros int64
}

// Hold is money held for one request.
type Hold struct {
	RequestID      string
	UserID         int64
	KeyID          int64
	GroupID        int64
	BillingMode    string
	SubscriptionID int64 // 0 = none
	KeyQuota       bool  // also held on the key's quota
	AmountMicros   int64
	Existing       bool // the request held already: nothing was checked or held again
}

// ErrMismatch: the request id holds money for another key or group of the user.
var ErrMismatch = store.ErrReservationMismatch

// ErrLoadRace: settlements kept invalidating the wallets' loads; the caller answers 503.
var ErrLoadRace = errors.New("wallet loads kept losing to settlements")

func prefix(userID int64) string { return "pg:{u:" + strconv.FormatInt(userID, 10) + "}:" }

func holdKey(userID int64, requestID string) string { return prefix(userID) + "h:" + requestID }

func member(userID int64, requestID string) string {
	return strconv.FormatInt(userID, 10) + "/" + requestID
}

func walletKeys(r Request) []string {
	p := prefix(r.UserID)
	return []string{p + "bal", p + "k" + strconv.FormatInt(r.KeyID, 10), p + "g" + strconv.FormatInt(r.GroupID, 10),
		holdKey(r.UserID, r.RequestID), indexKey, holderKey(r.RequestID)}
}

// holderKey indexes a request id to the user whose keys hold it. The index, like indexKey,
// is outside the user's hash tag: holds need one Redis node, not a Cluster.
func holderKey(requestID string) string { return "pg:hr:" + requestID }

// Reserve checks the billing rules and holds the estimate, in one Redis call when the
// wallets are loaded (docs/billing.md). A refusal is a *store.BillingRefusal with a nil
// error. It is idempotent on RequestID: a request that holds already gets its hold back
// (Existing). A user, key or group PostgreSQL does not have is a *store.NotFoundError.
func (h *Holds) Reserve(ctx context.Context, r Request) (Hold, *store.BillingRefusal, error) {
	return h.run(ctx, r, false)
}

// Extend raises the hold of r.RequestID to r.AmountMicros when it holds less (a model
// fallback re-admission), by the same rules, up to what is available; refused only when
// less than r.MinAmountMicros beyond the amount held is available. A request that holds
// nothing extends nothing.
func (h *Holds) Extend(ctx context.Context, r Request) (*store.BillingRefusal, error) {
	_, refusal, err := h.run(ctx, r, true)
	return refusal, err
}

func (h *Holds) run(ctx context.Context, r Request, extend bool) (Hold, *store.BillingRefusal, error) {
	now := time.Now()
	if !extend && r.KeyExpiresAt != nil && !now.Before(*r.KeyExpiresAt) {
		return Hold{}, &store.BillingRefusal{Kind: store.RefuseKeyExpired, Message: store.MsgKeyExpired}, nil
	}
	tok := newToken()
	var loaded []any
	for range maxLoads + 1 {
		args := h.reserveArgs(r, now, extend, tok, loaded)
		res, err := reserveScript.Run(ctx, h.rdb, walletKeys(r), args...).StringSlice()
		if err != nil {
			return Hold{}, nil, fmt.Errorf("holding for request %s: %w", r.RequestID, err)
		}
		if res[0] == "load" {
			tok = res[1]
			if loaded, err = h.loadArgs(ctx, r, now); err != nil {
				return Hold{}, nil, err
			}
			continue
		}
		return reserveResult(r, res, now)
	}
	return Hold{}, nil, fmt.Errorf("holding for request %s: %w", r.RequestID, ErrLoadRace)
}

// reserveArgs are the reserve script's arguments (reserve.lua); loaded nil sends no load.
func (h *Holds) reserveArgs(r Request, now time.Time, extend bool, tok string, loaded []any) []any {
	mode := "b"
	if r.Mode == store.BillingSubscription {
		mode = "s"
	}
	want := max(r.AmountMicros, 0)
	need := max(0, min(r.MinAmountMicros, want))
	if extend {
		need = max(r.MinAmountMicros, 0)
	}
	args := []any{now.UnixMilli(), want, need, mode, r.KeyID, r.GroupID, now.Add(h.ttl).UnixMilli(),
		(h.ttl + time.Hour).Milliseconds(), boolArg(extend), tok, member(r.UserID, r.RequestID)}
	if loaded != nil {
		return append(append(args, 1), loaded...)
	}
	return append(args, 0)
}

// reserveResult reads a reserve script's answer other than "load".
func reserveResult(r Request, res []string, now time.Time) (Hold, *store.BillingRefusal, error) {
	switch res[0] {
	case "mismatch":
		return Hold{}, nil, fmt.Errorf("holding for request %s: %w", r.RequestID, ErrMismatch)
	case "none":
		return Hold{}, nil, nil
	case "refuse":
		return Hold{}, refusal(res[1:], now), nil
	}
	return parseHold(r, res), nil, nil
}

// loadArgs reads the wallets from PostgreSQL as the reserve script's load arguments.
func (h *Holds) loadArgs(ctx context.Context, r Request, now time.Time) ([]any, error) {
	if h.onLoad != nil {
		h.onLoad()
	}
	w, err := h.load.LoadWallets(ctx, r.UserID, r.KeyID, r.GroupID, now)
	if err != nil {
		return nil, fmt.Errorf("holding for request %s: %w", r.RequestID, err)
	}
	fresh := now.Add(h.refresh)
	quota := int64(-1)
	if w.QuotaMicros != nil {
		quota = *w.QuotaMicros
	}
	args := []any{w.BalanceMicros, quota, w.QuotaUsedMicros}
	if s := w.Subscription; s != nil {
		args = append(args, s.ID)
		for _, l := range s.Limits {
			args = append(args, limitArg(l))
		}
		for _, u := range s.Used {
			args = append(args, u)
		}
		for _, e := range s.Ends {
			args = append(args, e.UnixMilli())
			if e.Before(fresh) {
				fresh = e // a window that ends restarts from 0 used: reload then
			}
		}
		if s.ExpiresAt.Before(fresh) {
			fresh = s.ExpiresAt
		}
	} else {
		args = append(args, 0, -1, -1, -1, 0, 0, 0, 0, 0, 0)
	}
	return append(args, fresh.UnixMilli()), nil
}

func limitArg(l *int64) int64 {
	if l == nil {
		return -1
	}
	return *l
}

func boolArg(b bool) int {
	if b {
		return 1
	}
	return 0
}

func parseHold(r Request, res []string) Hold {
	amount, _ := strconv.ParseInt(res[1], 10, 64)
	sid, _ := strconv.ParseInt(res[3], 10, 64)
	mode := store.BillingBalance
	if res[2] == "s" {
		mode = store.BillingSubscription
	}
	return Hold{RequestID: r.RequestID, UserID: r.UserID, KeyID: r.KeyID, GroupID: r.GroupID, BillingMode: mode,
		SubscriptionID: sid, KeyQuota: res[4] == "1", AmountMicros: amount, Existing: res[5] == "1"}
}

var windowNames = [3]string{billing.Daily, billing.Weekly, billing.Monthly}

var windowMessages = map[string]string{
	billing.Daily:   "Daily usage limit exceeded",
	billing.Weekly:  "Weekly usage limit exceeded",
	billing.Monthly: "Monthly usage limit exceeded",
}

// refusal turns the script's refusal into the store's (the same kinds and messages as ever).
func refusal(res []string, now time.Time) *store.BillingRefusal {
	num := func(i int) int64 {
		if i >= len(res) {
			return 0
		}
		v, _ := strconv.ParseInt(res[i], 10, 64)
		return v
	}
	switch res[0] {
	case "balance":
		return &store.BillingRefusal{Kind: store.RefuseInsufficientBalance, Message: store.MsgInsufficientBalance, AvailableMicros: num(1)}
	case "quota":
		return &store.BillingRefusal{Kind: store.RefuseKeyQuota, Message: store.MsgKeyQuota, AvailableMicros: num(1)}
	case "nosub":
		return &store.BillingRefusal{Kind: store.RefuseNoSubscription, Message: store.MsgNoSubscription}
	}
	name := windowNames[min(max(num(1)-1, 0), 2)]
	left := time.UnixMilli(num(2)).Sub(now)
	return &store.BillingRefusal{Kind: store.RefuseWindowExhausted, Message: windowMessages[name], Window: name,
		RetryAfterSeconds: max(int64((left+time.Second-1)/time.Second), 1)}
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}
