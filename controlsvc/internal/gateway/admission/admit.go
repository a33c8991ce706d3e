package admission

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/ledger"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"

	"github.com/poolgate/poolgate/plugin/wire"
)

// maxGrantIDLen bounds a grant id sent back by the plugin (ours are 34 characters), and
// maxRequestIDLen a request id (the plugin's are 28).
const (
	maxGrantIDLen   = 128
	maxRequestIDLen = 128
)

// Upstream authentication per platform.
const anthropicVersion = "2023-06-01" // https://docs.anthropic.com/en/api/versioning

// Request is the body of POST /internal/v1/admit.
type Request struct {
	RequestID string   `json:"request_id"`
	GrantID   string   `json:"grant_id"`
	APIKey    string   `json:"api_key"`
	Path      string   `json:"path"`
	Model     string   `json:"model"`
	Stream    bool     `json:"stream"`
	Exclude   []int64  `json:"exclude"`
	Failed    *failure `json:"failed"`
	// SessionHash is the plugin's hex SHA-256 of the session seed ("Sticky sessions"); "" = none.
	SessionHash string `json:"session_hash"`
	// SessionSource says where the session seed came from: "explicit" (session headers,
	// metadata.user_id, prompt_cache_key; also when absent) or "content" (the content
	// seed), which never waits for its sticky account ("Sticky sessions").
	SessionSource string `json:"session_source"`
	// ServedModel, on a re-admission, echoes the grant's served_model: the fallback the
	// failed attempt was serving, from which the next fallback counts (fallback.go).
	ServedModel string `json:"served_model"`
	// MaxWaitMs is the plugin's wait budget: the call spends at most this long in wait
	// queues, 0 none; absent, only the configured queue timeouts bound it (wait.go).
	MaxWaitMs *int64 `json:"max_wait_ms"`
	// DeadlineMs is the absolute Unix time in milliseconds by which the plugin stops waiting
	// for the answer (0: none); the gateway's admit_call.go keeps the call within it.
	DeadlineMs int64 `json:"deadline_ms"`
	// The inputs of the cost estimate (billing.go): the client body's size and the output
	// maximum it names, 0 = none.
	InputBytes      int64 `json:"input_bytes"`
	MaxOutputTokens int64 `json:"max_output_tokens"`
	// Hedge asks for one more account slot for the grant, without waiting and without
	// releasing the current one (hedge.go); exclude names the accounts it must not be.
	Hedge bool `json:"hedge"`

	// platform is the key's group's platform once authenticated ("" before): it picks the
	// envelope of a refusal (rejectBody). Not part of the JSON.
	platform string
}

// Platform is the key's group's platform once Admit authenticated it, "" before: it picks
// the envelope of a refusal.
func (req *Request) Platform() string { return req.platform }

// keyResult is a cached key lookup; ok false is a cached "no such servable key".
type keyResult struct {
	auth  store.KeyAuth
	rules groupRules
	ok    bool
}

// Admit runs one admission: exactly one of the results is set. The grant is in
// plugin/wire's shape: the plugin decodes the same type.
func (s *Admitter) Admit(ctx context.Context, req *Request) (*wire.Grant, *Rejection, error) {
	if req.Model == "" {
		return nil, RejectInvalid("model is required"), nil
	}
	if !ledger.ValidModel(req.Model) {
		return nil, RejectInvalid("Invalid model"), nil
	}
	// The request id keys the request's reservation and usage record.
	if req.RequestID == "" || len(req.RequestID) > maxRequestIDLen {
		return nil, RejectInvalid("Invalid request id"), nil
	}
	if len(req.GrantID) > maxGrantIDLen {
		return nil, RejectInvalid("Invalid grant id"), nil
	}
	if req.SessionHash != "" && !validSessionHash(req.SessionHash) {
		return nil, RejectInvalid("Invalid session hash"), nil
	}
	if req.SessionSource != "" && req.SessionSource != sessionSourceExplicit && req.SessionSource != sessionSourceContent {
		return nil, RejectInvalid("Invalid session_source"), nil
	}
	if req.MaxWaitMs != nil && *req.MaxWaitMs < 0 {
		return nil, RejectInvalid("Invalid max_wait_ms"), nil
	}
	if req.DeadlineMs < 0 {
		return nil, RejectInvalid("Invalid deadline_ms"), nil
	}
	if rej := validHedge(req); rej != nil {
		return nil, rej, nil
	}
	if budget, ok := req.waitBudget(time.Now()); ok {
		ctx = withWaitBudget(ctx, budget)
	}
	if req.APIKey == "" {
		return nil, RejectAuth, nil
	}
	kr, err := s.authenticate(ctx, req.APIKey)
	if err != nil {
		return nil, nil, err
	}
	if !kr.ok {
		return nil, RejectAuth, nil
	}
	key := kr.auth
	req.platform = key.Platform
	s.health.BreakerSettings(key) // remembered for the group's reports (package health)
	if req.Hedge {
		var rej *Rejection
		if ctx, rej, err = s.prepareHedge(ctx, key, req); err != nil || rej != nil {
			return nil, rej, err
		}
	}
	// The group's mapping applies first; the accounts' own mappings apply to its result.
	_, named := kr.rules.route(req.Model)
	// The model the request is being served: the requested one, or on a re-admission the
	// fallback its grant served (fallback.go).
	current := req.Model
	if req.GrantID != "" && req.ServedModel != "" && kr.rules.fallbacks.knows(req.Model, req.ServedModel) {
		current = req.ServedModel
	}
	currentRouted, _ := kr.rules.route(current)
	route := routeOf(ctx) // route.go: the routing explanation of this admission
	route.begin(admissionKind(req), currentRouted)

	// The failed attempt is settled before anything can refuse this admission, so that its
	// slot is freed and its account marked even when the client gets an error now.
	// Only the grant's current account can have failed it: a failed attempt naming another
	// account (or coming without a grant) is refused and marks nothing, so that no caller
	// can pause an account its request never used.
	if f := req.Failed; f != nil && f.AccountID > 0 {
		if req.GrantID == "" {
			return nil, RejectInvalid("failed requires a grant_id"), nil
		}
		held, err := s.slots.ReleaseHeld(ctx, slots.KindAccount, f.AccountID, req.GrantID)
		if err != nil {
			return nil, nil, err
		}
		if !held {
			s.readmitRefused.Inc()
			return nil, rejectFailedAccount, nil
		}
		failed := route.failed(*f) // the routing explanation's failed attempt
		failed.BreakerOpened = s.markFailedAttempt(ctx, key, currentRouted, req.GrantID, *f)
	}
	if rej := kr.rules.endpointRefusal(req.Path, key.Platform, named); rej != nil {
		return nil, rej, nil
	}

	first := req.GrantID == ""
	if first {
		// A re-admission's request holds its reservation already: a balance that ran out
		// meanwhile must not end it.
		if rej := precheckBilling(key, time.Now()); rej != nil {
			return nil, rej, nil
		}
	}

	if key.UserConcurrency <= 0 {
		return nil, rejectUserConcurrency, nil // a user with concurrency 0 may not run anything
	}
	exclude := make(map[int64]bool, len(req.Exclude)+1)
	for _, id := range req.Exclude {
		exclude[id] = true
	}
	failedClass, failedAccount := "", int64(0)
	if req.Failed != nil {
		exclude[req.Failed.AccountID] = true
		failedClass, failedAccount = req.Failed.ErrorClass, req.Failed.AccountID
	}
	ch, selRej, err := s.chooseModel(ctx, key, kr.rules, req.Model, current, failedClass, failedAccount, exclude)
	if err != nil {
		return nil, nil, err
	}
	cands := ch.cands

	if first {
		req.GrantID = newGrantID()
	}
	ss := &session{hash: req.SessionHash, content: req.SessionSource == sessionSourceContent}
	var fold *foldedHold
	if selRej == nil {
		fold = s.foldHold(key, req, ch, first) // holdfold.go
	}
	chosen, rej, err := s.acquireSlots(ctx, key, req.GrantID, first, cands, selRej, ss, fold)
	upstreamModel := ""
	if err != nil || rej != nil {
		s.dropHold(ctx, fold)
	} else {
		upstreamModel = chosen.upstream
		if ch.model != req.Model && upstreamModel == "" {
			upstreamModel = ch.routed // a fallback always names what is sent
		}
		// Billing runs with the slots held, after any wait (docs/billing.md): held with the
		// grant when that was immediate, else now.
		var decided bool
		if rej, decided, err = s.holdOutcome(ctx, fold, chosen, upstreamModel); !decided {
			rej, err = s.bill(ctx, key, req, ch.model, upstreamModel, first, ch.model != current)
		}
		if err != nil || rej != nil {
			s.undoSlots(ctx, first, key.UserID, req.GrantID, []slots.Acquisition{
				{Kind: slots.KindAccount, ID: chosen.acc.ID, GrantID: req.GrantID, Limit: chosen.acc.Concurrency}})
			s.unclaimProbe(ctx, chosen, req.GrantID) // if it was the probe, the next request is
		}
	}
	if err != nil || rej != nil {
		// On a re-admission the grant stays: the plugin's final report releases it.
		if first {
			req.GrantID = "" // a refused first admission leaves no grant
		}
		return nil, rej, err
	}
	acc := chosen.acc
	convert := convertFor(req.Path, key.Platform)
	served := ""
	if ch.model != req.Model {
		served = ch.model
	}
	s.touch.used(acc.ID, key.KeyID, time.Now())
	return &wire.Grant{
		GrantID:       req.GrantID,
		RequestID:     req.RequestID,
		UserID:        key.UserID,
		APIKeyID:      key.KeyID,
		GroupID:       key.GroupID,
		Platform:      key.Platform,
		AccountID:     acc.ID,
		BaseURL:       acc.BaseURL,
		Headers:       grantHeaders(key.Platform, acc.APIKey, acc.Headers),
		UpstreamModel: upstreamModel,
		ServedModel:   served,

		ContextFallback: kr.rules.fallbacks.contextFallback(req.Model, ch.model),

		FirstTokenTimeoutMs:     key.FirstTokenTimeoutMs,
		StreamIdleTimeoutMs:     key.StreamIdleTimeoutMs,
		ResponseHeaderTimeoutMs: key.ResponseHeaderTimeoutMs,
		HedgeAfterMs:            hedgeAfter(key),
		Convert:                 convert,
		MaxOutputTokens:         outputCap(key, req.MaxOutputTokens, convert, usage.PricedModel(upstreamModel, ch.model)),
		ForwardBetas:            key.ForwardBetas,
		UserAgent:               key.UserAgent,
	}, nil, nil
}

// acquireSlots takes the user slot and an account slot for grantID, waiting in FIFO queues
// when they are full (docs/design.md, "POST /internal/v1/admit"). The first round trip pipelines the user's entry with
// either the only candidate's entry or the loads of all candidates, and the session's sticky
// binding, and the folded money hold (holdfold.go). On a refusal or error the slots this call
// took for a first admission are undone.
func (s *Admitter) acquireSlots(ctx context.Context, key store.KeyAuth, grantID string, first bool,
	cands []candidate, selRej *Rejection, ss *session, fold *foldedHold) (*candidate, *Rejection, error) {
	if selRej != nil {
		if selRej == rejectNoAccount && ss.hash != "" {
			// Whatever account the session is bound to is unusable now ("Sticky sessions").
			s.unbindSticky(ctx, key.GroupID, ss.hash)
		}
		return nil, selRej, nil // nothing to wait for: no slot is taken
	}
	user := slots.Entry{Kind: slots.KindUser, ID: key.UserID, GrantID: grantID, Limit: key.UserConcurrency,
		MaxWaiters: s.wait.UserMaxWaiters, WaitTTL: s.wait.UserTimeout + waitEntryMargin}
	entries := []slots.Entry{user}
	var loadIDs []int64
	if len(cands) == 1 {
		a := cands[0].acc
		entries = append(entries, slots.Entry{Kind: slots.KindAccount, ID: a.ID, GrantID: grantID, Limit: a.Concurrency})
	} else {
		loadIDs = candidateIDs(cands)
	}
	var stickyCmd *redis.StringCmd
	var brkCmds []*redis.StringCmd
	extra := func(p redis.Pipeliner) {
		if ss.hash != "" {
			stickyCmd = stickyGet(ctx, p, key.GroupID, ss.hash)
		}
		brkCmds = breakerReads(ctx, p, cands) // breakers.go
		fold.send(ctx, s.holds, p)            // holdfold.go: after the grant, on the same node
	}
	res, loads, err := s.slots.EnterAndLoad(ctx, entries, slots.KindAccount, loadIDs, extra)
	if err != nil {
		s.undoSlots(ctx, first, key.UserID, grantID, accountEntries(entries[1:]))
		return nil, nil, err
	}
	accountHeld := len(res) > 1 && res[1] == slots.Held
	if res[0] != slots.Held || !accountHeld {
		s.dropHold(ctx, fold) // the grant waits or fails: bill holds after the waits
	}
	if res[0] != slots.Held {
		if accountHeld {
			s.undoSlots(ctx, false, key.UserID, grantID, accountEntries(entries[1:]))
			accountHeld = false
		}
		if res[0] == slots.Refused {
			return nil, userRefusal(key.UserConcurrency, errWaitQueueFull), nil
		}
		if err := s.waitSlot(ctx, user, s.wait.UserTimeout); err != nil {
			if errors.Is(err, errWaitTimeout) || errors.Is(err, errWaitQueueFull) || errors.Is(err, errShuttingDown) {
				return nil, userRefusal(key.UserConcurrency, err), nil
			}
			return nil, nil, err
		}
		loads = nil // stale after the wait
	}
	ss.bound = stickyBinding(stickyCmd)
	var held *candidate
	if accountHeld {
		held = &cands[0]
	}
	cands, chosen, err := s.throughBreakers(ctx, cands, brkCmds, grantID, held) // breakers.go
	if err != nil {
		s.undoSlots(ctx, first, key.UserID, grantID, nil)
		return nil, nil, err
	}
	if chosen == nil {
		if len(cands) == 0 {
			s.undoSlots(ctx, first, key.UserID, grantID, nil)
			if ss.hash != "" {
				s.unbindSticky(ctx, key.GroupID, ss.hash)
			}
			return nil, rejectNoAccount, nil
		}
		var rej *Rejection
		chosen, rej, err = s.acquireAccount(ctx, cands, loads, grantID, ss, first)
		if err != nil || rej != nil {
			s.undoSlots(ctx, first, key.UserID, grantID, nil)
			return nil, rej, err
		}
	}
	if b, write := ss.next(chosen.acc.ID, cands); write {
		s.bindSticky(ctx, key.GroupID, ss.hash, b)
	}
	routeOf(ctx).mark(chosen.acc.ID, routing.Chosen)
	return chosen, nil, nil
}

// userRefusal maps a failed user wait to the client's error: a full queue, or a timeout (also
// a user whose concurrency is 0, who may never run anything).
func userRefusal(concurrency int, err error) *Rejection {
	if errors.Is(err, errShuttingDown) {
		return RejectShuttingDown
	}
	if concurrency > 0 && errors.Is(err, errWaitQueueFull) {
		return rejectUserQueueFull
	}
	return rejectUserConcurrency
}

func candidateIDs(cands []candidate) []int64 {
	ids := make([]int64, len(cands))
	for i := range cands {
		ids[i] = cands[i].acc.ID
	}
	return ids
}

func accountEntries(es []slots.Entry) []slots.Acquisition {
	out := make([]slots.Acquisition, len(es))
	for i, e := range es {
		out[i] = slots.Acquisition{Kind: e.Kind, ID: e.ID, GrantID: e.GrantID, Limit: e.Limit}
	}
	return out
}

// undoSlots releases what an admission took before it was refused: the user slot of a first
// admission (a re-admission keeps its grant's) and the given account acquisitions, in one
// round trip, detached from the request so that a cancelled request still cleans up.
func (s *Admitter) undoSlots(ctx context.Context, first bool, userID int64, grantID string, accounts []slots.Acquisition) {
	leases := make([]slots.Lease, 0, len(accounts)+1)
	if first {
		leases = append(leases, slots.Lease{Kind: slots.KindUser, ID: userID, GrantID: grantID})
	}
	for _, a := range accounts {
		leases = append(leases, slots.Lease{Kind: a.Kind, ID: a.ID, GrantID: grantID})
	}
	if len(leases) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	if err := s.slots.ReleaseMany(ctx, leases); err != nil {
		// The leases expire by themselves after their TTL.
		s.log.Warn("releasing slots of refused admission", "user_id", userID, "error", err)
	}
}

// AbandonGrant gives back what an admission nobody received took: the account slot, and
// for a first admission the user slot and the reservation (a re-admitted request keeps
// its grant and reservation, which its report releases).
func (s *Admitter) AbandonGrant(ctx context.Context, g *wire.Grant, first bool) {
	s.undoSlots(ctx, first, g.UserID, g.GrantID, []slots.Acquisition{{Kind: slots.KindAccount, ID: g.AccountID, GrantID: g.GrantID}})
	if !first {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	if _, err := s.holds.Release(ctx, g.UserID, g.RequestID); err != nil {
		// The sweeper releases it after the reservation TTL.
		s.log.Warn("releasing hold of abandoned grant", "request_id", g.RequestID, "error", err)
	}
}

// authenticate resolves a presented key, with its group's compiled model rules, through the
// 2 s cache; ok is false for an unknown or unservable key (cached too, so a flood of bad keys
// does not reach PostgreSQL).
func (s *Admitter) authenticate(ctx context.Context, apiKey string) (keyResult, error) {
	sum := sha256.Sum256([]byte(apiKey))
	hash := hex.EncodeToString(sum[:])
	// A key of no row is refused from memory, and a key never seen costs a share of one
	// batched query rather than a query of its own; unknown keys live in a cache of their
	// own, so that a flood of them never evicts the keys in use.
	if _, unknown := s.unknownKeys.Peek(hash); unknown {
		return keyResult{}, nil
	}
	if !s.keys.Known(hash) {
		exists, err := s.keyProbe.exists(ctx, hash) // keyprobe.go
		if err != nil {
			return keyResult{}, fmt.Errorf("authenticating key: %w", err)
		}
		if !exists {
			s.unknownKeys.Put(hash, struct{}{})
			return keyResult{}, nil
		}
	}
	res, err := s.keys.Get(ctx, hash, func(ctx context.Context) (keyResult, error) {
		a, err := s.store.AuthenticateKey(ctx, hash)
		if errors.Is(err, store.ErrKeyNotFound) {
			return keyResult{}, nil
		}
		if err != nil {
			return keyResult{}, err
		}
		rules, err := compileGroupRules(a)
		if err != nil {
			return keyResult{}, err
		}
		return keyResult{auth: a, rules: rules, ok: true}, nil
	})
	if err != nil {
		return keyResult{}, fmt.Errorf("authenticating key: %w", err)
	}
	return res, nil
}

// upstreamHeaders are the credential headers the plugin sets on the upstream request.
func upstreamHeaders(platform, apiKey string) map[string]string {
	if platform == PlatformAnthropic {
		return map[string]string{"x-api-key": apiKey, "anthropic-version": anthropicVersion}
	}
	return map[string]string{"Authorization": "Bearer " + apiKey}
}

func newGrantID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go ≥ 1.24)
	return "g_" + hex.EncodeToString(b[:])
}
