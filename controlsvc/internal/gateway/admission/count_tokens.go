package admission

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/ledger"
)

// POST /internal/v1/count-tokens (docs/design.md, "POST /internal/v1/count-tokens"): the
// plugin asks which account may answer a client's POST /v1/messages/count_tokens. The
// upstream endpoint is free, so nothing here takes a slot, reserves, bills or records: the
// answer is an account of the key's anthropic group that serves the model, or "estimate"
// (the plugin then answers a local estimate). Only a bad key is refused.

// countTokensPerSecond is the abuse bound (docs/security.md, "count_tokens"): the upstream
// calls one user may start per second. Claude Code sends about a dozen for one /context; a
// user over the bound gets the local estimate, so the pool never sees the excess.
const countTokensPerSecond = 20

// CountTokensRequest is the body of POST /internal/v1/count-tokens.
type CountTokensRequest struct {
	APIKey string `json:"api_key"`
	Model  string `json:"model"`
}

// CountTokensReply is either an account (headers as a grant carries them, plus the group's
// header policy) or Estimate.
type CountTokensReply struct {
	Estimate      bool              `json:"estimate,omitempty"`
	AccountID     int64             `json:"account_id,omitempty"`
	Platform      string            `json:"platform,omitempty"`
	BaseURL       string            `json:"base_url,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	UpstreamModel string            `json:"upstream_model,omitempty"`
	ForwardBetas  *string           `json:"forward_betas,omitempty"`
	UserAgent     string            `json:"user_agent,omitempty"`
}

var estimateReply = CountTokensReply{Estimate: true}

// CountTokens authenticates the key like admit and picks an account; every reason not to
// call upstream is an estimate, not a refusal (never 404: the plugin answers with its local estimate).
func (s *Admitter) CountTokens(ctx context.Context, req CountTokensRequest) (CountTokensReply, *Rejection, error) {
	if req.APIKey == "" {
		return CountTokensReply{}, RejectAuth, nil
	}
	kr, err := s.authenticate(ctx, req.APIKey)
	if err != nil {
		return CountTokensReply{}, nil, err
	}
	if !kr.ok {
		return CountTokensReply{}, RejectAuth, nil
	}
	key := kr.auth
	if key.Platform != PlatformAnthropic || req.Model == "" || !ledger.ValidModel(req.Model) {
		return estimateReply, nil, nil
	}
	// A key that may not run requests (expired, no balance, concurrency 0) gets no upstream
	// call either: the estimate costs the pool nothing.
	if precheckBilling(key, time.Now()) != nil || key.UserConcurrency <= 0 {
		return estimateReply, nil, nil
	}
	routed, named := kr.rules.route(req.Model)
	cands, rej, err := s.candidates(ctx, key, req.Model, routed, named, nil)
	if err != nil {
		return CountTokensReply{}, nil, err
	}
	if rej != nil || len(cands) == 0 {
		return estimateReply, nil, nil
	}
	allowed, err := s.countTokensAllowed(ctx, key.UserID, time.Now())
	if err != nil {
		return CountTokensReply{}, nil, err
	}
	if !allowed {
		return estimateReply, nil, nil
	}
	cands, err = s.closedBreakers(ctx, cands)
	if err != nil {
		return CountTokensReply{}, nil, err
	}
	if len(cands) == 0 {
		return estimateReply, nil, nil
	}
	// Any healthy account will do and none is held: a random one spreads the calls.
	c := cands[rand.IntN(len(cands))]
	return CountTokensReply{
		AccountID:     c.acc.ID,
		Platform:      key.Platform,
		BaseURL:       c.acc.BaseURL,
		Headers:       grantHeaders(key.Platform, c.acc.APIKey, c.acc.Headers),
		UpstreamModel: c.upstream,
		ForwardBetas:  key.ForwardBetas,
		UserAgent:     key.UserAgent,
	}, nil, nil
}

// countTokensAllowed counts one upstream count_tokens call of the user in the current
// second's window and reports whether it is within countTokensPerSecond.
func (s *Admitter) countTokensAllowed(ctx context.Context, userID int64, now time.Time) (bool, error) {
	k := "pg:{u:" + strconv.FormatInt(userID, 10) + "}:ct:" + strconv.FormatInt(now.Unix(), 10)
	var incr *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, k)
		p.Expire(ctx, k, 2*time.Second)
		return nil
	})
	if err != nil {
		return false, err
	}
	return incr.Val() <= countTokensPerSecond, nil
}

// closedBreakers keeps the candidates whose (account, model) breaker is closed: a half-open
// one is left to the probe of a real request.
func (s *Admitter) closedBreakers(ctx context.Context, cands []candidate) ([]candidate, error) {
	p := s.rdb.Pipeline()
	cmds := breakerReads(ctx, p, cands)
	if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
		return nil, err
	}
	now := time.Now()
	kept := cands[:0:0]
	for i := range cands {
		if breaker.VerdictOf(cmds[i], now) == breaker.Closed {
			kept = append(kept, cands[i])
		}
	}
	return kept, nil
}
