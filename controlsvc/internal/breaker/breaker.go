// Package breaker keeps the health of (account, upstream model) pairs in Redis, so that
// every controlsvc instance agrees: a circuit breaker per pair, opened by failures within a
// window, half-open after a cool-down with exactly one probe, closed by an answer
// (docs/design.md, "Health model"). It also counts an account's consecutive dial failures for
// the dial back-off. Every key of an account shares the hash tag {h:<id>}, so each script
// touches one Redis Cluster slot, and every key has a TTL.
package breaker

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of the group settings (store.KeyAuth's Breaker* fields; null = default).
const (
	DefaultThreshold = 3
	DefaultWindow    = 60 * time.Second
	DefaultCooldown  = 30 * time.Second
	// MaxCooldown caps the cool-down, which doubles with every failed probe.
	MaxCooldown = 600 * time.Second
	// ProbeTTL bounds a half-open probe claim: a probe whose report never comes (a crashed
	// gateway) lets the next request probe after this long.
	ProbeTTL = 2 * time.Minute
	// dialCountTTL forgets an account's dial failures after a quiet spell as long as the
	// back-off's cap and a margin.
	dialCountTTL = 10 * time.Minute
)

var (
	//go:embed fail.lua
	failLua    string
	failScript = redis.NewScript(failLua)
	//go:embed claim.lua
	claimLua    string
	claimScript = redis.NewScript(claimLua)
	//go:embed unclaim.lua
	unclaimLua    string
	unclaimScript = redis.NewScript(unclaimLua)
	//go:embed success.lua
	successLua    string
	successScript = redis.NewScript(successLua)
	//go:embed dial.lua
	dialLua    string
	dialScript = redis.NewScript(dialLua)
)

// Settings are a group's breaker rules.
type Settings struct {
	Threshold int
	Window    time.Duration
	Cooldown  time.Duration
}

// SettingsOf fills the group's nullable fields (nil or <= 0 = default).
func SettingsOf(threshold, windowMs, cooldownMs *int64) Settings {
	s := Settings{Threshold: DefaultThreshold, Window: DefaultWindow, Cooldown: DefaultCooldown}
	if threshold != nil && *threshold > 0 {
		s.Threshold = int(min(*threshold, 1000))
	}
	if windowMs != nil && *windowMs > 0 {
		s.Window = time.Duration(*windowMs) * time.Millisecond
	}
	if cooldownMs != nil && *cooldownMs > 0 {
		s.Cooldown = min(time.Duration(*cooldownMs)*time.Millisecond, MaxCooldown)
	}
	return s
}

// Key is the hash of an account's breakers: one field per upstream model.
func Key(accountID int64) string {
	return "pg:{h:" + strconv.FormatInt(accountID, 10) + "}:brk"
}

func dialKey(accountID int64) string {
	return "pg:{h:" + strconv.FormatInt(accountID, 10) + "}:dial"
}

// state is a breaker's field, as the scripts write it (short names keep it small); its
// window of failure times (f) is the scripts' alone, and an empty one is encoded as {}.
type state struct {
	Failures   int64  `json:"n"`
	OpenUntil  int64  `json:"ou"` // ms; 0 = closed
	Cooldown   int64  `json:"cd"`
	Reason     string `json:"r"`
	Probe      string `json:"p"`
	ProbeUntil int64  `json:"pu"`
	Expires    int64  `json:"x"`
}

// Verdict is what a breaker allows for a new request.
type Verdict int

// Verdicts.
const (
	Closed   Verdict = iota // serve
	Open                    // do not serve (cooling down, or another request is probing)
	HalfOpen                // serve only as the probe: Claim first
)

func decode(raw string) (state, error) {
	var st state
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return state{}, fmt.Errorf("reading breaker: %w", err)
	}
	return st, nil
}

func (st state) verdict(nowMs int64) Verdict {
	switch {
	case st.Expires < nowMs || st.OpenUntil == 0:
		return Closed
	case nowMs < st.OpenUntil:
		return Open
	case st.Probe != "" && st.ProbeUntil > nowMs:
		return Open
	}
	return HalfOpen
}

// Read queues the read of an (account, model) breaker on p, for the admission's pipeline.
func Read(ctx context.Context, p redis.Pipeliner, accountID int64, model string) *redis.StringCmd {
	return p.HGet(ctx, Key(accountID), model)
}

// VerdictOf reads a Read's answer at now. An unreadable answer counts as closed: a broken
// breaker must not take an account out.
func VerdictOf(cmd *redis.StringCmd, now time.Time) Verdict {
	if cmd == nil {
		return Closed
	}
	raw, err := cmd.Result()
	if err != nil {
		return Closed
	}
	st, err := decode(raw)
	if err != nil {
		return Closed
	}
	return st.verdict(now.UnixMilli())
}

// Breakers runs the transitions.
type Breakers struct {
	rdb redis.UniversalClient
}

// New returns the breakers of rdb.
func New(rdb redis.UniversalClient) *Breakers { return &Breakers{rdb: rdb} }

// Fail records a failure of (account, model) by grantID; opened is true when it opened
// (or re-opened) the breaker.
func (b *Breakers) Fail(ctx context.Context, accountID int64, model, reason, grantID string, s Settings, now time.Time) (opened bool, err error) {
	vals, err := failScript.Run(ctx, b.rdb, []string{Key(accountID)}, model, now.UnixMilli(), reason, grantID,
		s.Threshold, s.Window.Milliseconds(), s.Cooldown.Milliseconds(), MaxCooldown.Milliseconds()).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("recording breaker failure of account %d model %q: %w", accountID, model, err)
	}
	return len(vals) > 0 && vals[0] == 1, nil
}

// Claim takes the half-open probe of (account, model) for grantID: true when the grant may
// send the probe, or when the breaker is closed after all.
func (b *Breakers) Claim(ctx context.Context, accountID int64, model, grantID string, now time.Time) (bool, error) {
	n, err := claimScript.Run(ctx, b.rdb, []string{Key(accountID)}, model, grantID, now.UnixMilli(), ProbeTTL.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("claiming breaker probe of account %d model %q: %w", accountID, model, err)
	}
	return n != 0, nil
}

// Unclaim gives back grantID's probe claim, when the grant went to another account.
func (b *Breakers) Unclaim(ctx context.Context, accountID int64, model, grantID string) error {
	if err := unclaimScript.Run(ctx, b.rdb, []string{Key(accountID)}, model, grantID).Err(); err != nil {
		return fmt.Errorf("giving back breaker probe of account %d model %q: %w", accountID, model, err)
	}
	return nil
}

// DialFailure counts a dial failure of the account and answers the consecutive count.
func (b *Breakers) DialFailure(ctx context.Context, accountID int64) (int64, error) {
	n, err := dialScript.Run(ctx, b.rdb, []string{dialKey(accountID)}, dialCountTTL.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("counting dial failure of account %d: %w", accountID, err)
	}
	return n, nil
}

// View is a breaker that is not closed, for the admin API.
type View struct {
	Model       string    `json:"model"`
	State       string    `json:"state"` // "open" | "half_open"
	Reason      string    `json:"reason"`
	Failures    int64     `json:"failures"`
	NextProbeAt time.Time `json:"next_probe_at"`
}

// List returns the account's breakers that are open or half-open at now, by model.
func (b *Breakers) List(ctx context.Context, accountID int64, now time.Time) ([]View, error) {
	all, err := b.rdb.HGetAll(ctx, Key(accountID)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading breakers of account %d: %w", accountID, err)
	}
	nowMs := now.UnixMilli()
	out := []View{}
	for model, raw := range all {
		st, err := decode(raw)
		if err != nil || st.Expires < nowMs || st.OpenUntil == 0 {
			continue
		}
		v := View{Model: model, State: "open", Reason: st.Reason, Failures: st.Failures,
			NextProbeAt: time.UnixMilli(st.OpenUntil).UTC()}
		if nowMs >= st.OpenUntil {
			v.State = "half_open"
			if st.Probe != "" && st.ProbeUntil > nowMs {
				v.NextProbeAt = time.UnixMilli(st.ProbeUntil).UTC() // the next one, should the probe never report
			} else {
				v.NextProbeAt = now.UTC() // the next request
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Model < out[j].Model })
	return out, nil
}

// Clear closes every breaker of the account and forgets its dial failures.
func (b *Breakers) Clear(ctx context.Context, accountID int64) error {
	if err := b.rdb.Del(ctx, Key(accountID), dialKey(accountID)).Err(); err != nil {
		return fmt.Errorf("clearing breakers of account %d: %w", accountID, err)
	}
	return nil
}

// settledTTL outlives any grant: a request's total deadline is far shorter.
const settledTTL = time.Hour

func settledKey(accountID int64, grantID string) string {
	return "pg:{h:" + strconv.FormatInt(accountID, 10) + "}:settled:" + grantID
}

// MarkSettled remembers that the grant's failure on the account was settled at
// re-admission. The account is excluded for the rest of the grant, so a failed last
// attempt on it in the grant's report is that same failure (TakeSettled), which must not
// count twice.
func (b *Breakers) MarkSettled(ctx context.Context, accountID int64, grantID string) error {
	if err := b.rdb.Set(ctx, settledKey(accountID, grantID), 1, settledTTL).Err(); err != nil {
		return fmt.Errorf("remembering settled failure of account %d: %w", accountID, err)
	}
	return nil
}

// TakeSettled reports whether MarkSettled was called for the account and grant, and
// forgets it.
func (b *Breakers) TakeSettled(ctx context.Context, accountID int64, grantID string) (bool, error) {
	n, err := b.rdb.Del(ctx, settledKey(accountID, grantID)).Result()
	if err != nil {
		return false, fmt.Errorf("reading settled failure of account %d: %w", accountID, err)
	}
	return n == 1, nil
}
