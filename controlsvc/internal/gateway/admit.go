package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// maxGrantIDLen bounds a grant id sent back by the plugin (ours are 34 characters).
const maxGrantIDLen = 128

// Upstream authentication per platform.
const anthropicVersion = "2023-06-01" // https://docs.anthropic.com/en/api/versioning

// admitRequest is the body of POST /internal/v1/admit.
type admitRequest struct {
	RequestID string   `json:"request_id"`
	GrantID   string   `json:"grant_id"`
	APIKey    string   `json:"api_key"`
	Path      string   `json:"path"`
	Model     string   `json:"model"`
	Stream    bool     `json:"stream"`
	Exclude   []int64  `json:"exclude"`
	Failed    *failure `json:"failed"`
}

// admitReply is a grant.
type admitReply struct {
	GrantID       string            `json:"grant_id"`
	RequestID     string            `json:"request_id"`
	UserID        int64             `json:"user_id"`
	APIKeyID      int64             `json:"api_key_id"`
	GroupID       int64             `json:"group_id"`
	Platform      string            `json:"platform"`
	AccountID     int64             `json:"account_id"`
	BaseURL       string            `json:"base_url"`
	Headers       map[string]string `json:"headers"`
	UpstreamModel string            `json:"upstream_model"`
}

// keyResult is a cached key lookup; ok false is a cached "no such servable key".
type keyResult struct {
	auth store.KeyAuth
	ok   bool
}

func (s *Service) handleAdmit(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req admitRequest
	if err := decodeBody(w, r, maxAdmitBody, &req); err != nil {
		writeReject(w, req.Path, rejectInvalid("Failed to parse admission request"))
		return
	}
	readmission := req.GrantID != ""
	reply, rej, err := s.admit(r.Context(), &req)
	attrs := func() []any {
		return []any{"request_id", req.RequestID, "grant_id", req.GrantID, "path", req.Path,
			"model", req.Model, "readmission", readmission, "elapsed", time.Since(start)}
	}
	switch {
	case err != nil:
		writeInternalError(w, s.log, "admission failed", err, attrs()...)
	case rej != nil:
		s.log.Info("admission refused", append(attrs(), "reason", rej.reason, "status", rej.status)...)
		writeReject(w, req.Path, rej)
	default:
		if s.log.Enabled(r.Context(), slog.LevelDebug) { // the hot path: build no attributes for nothing
			s.log.Debug("admitted", append(attrs(), "account_id", reply.AccountID)...)
		}
		writeJSON(w, http.StatusOK, reply)
	}
}

// admit runs one admission: exactly one of the results is set.
func (s *Service) admit(ctx context.Context, req *admitRequest) (*admitReply, *rejection, error) {
	if req.Model == "" {
		return nil, rejectInvalid("model is required"), nil
	}
	if len(req.GrantID) > maxGrantIDLen {
		return nil, rejectInvalid("Invalid grant id"), nil
	}
	if req.APIKey == "" {
		return nil, rejectAuth, nil
	}
	key, ok, err := s.authenticate(ctx, req.APIKey)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, rejectAuth, nil
	}

	// The failed attempt is settled before anything can refuse this admission, so that its
	// slot is freed and its account marked even when the client gets an error now.
	if f := req.Failed; f != nil && f.AccountID > 0 {
		if req.GrantID != "" {
			if err := s.slots.Release(ctx, slots.KindAccount, f.AccountID, req.GrantID); err != nil {
				return nil, nil, err
			}
		}
		s.markAccount(ctx, *f)
	}

	if key.BalanceMicros <= 0 {
		return nil, rejectBilling, nil
	}

	if key.UserConcurrency <= 0 {
		return nil, rejectUserConcurrency, nil // a user with concurrency 0 may not run anything
	}
	exclude := make(map[int64]bool, len(req.Exclude)+1)
	for _, id := range req.Exclude {
		exclude[id] = true
	}
	if req.Failed != nil {
		exclude[req.Failed.AccountID] = true
	}
	cands, selRej, err := s.candidates(ctx, key, req.Model, exclude)
	if err != nil {
		return nil, nil, err
	}

	first := req.GrantID == ""
	if first {
		req.GrantID = newGrantID()
	}
	chosen, rej, err := s.acquireSlots(ctx, key, req.GrantID, first, cands, selRej)
	if err != nil || rej != nil {
		// On a re-admission the grant stays: the plugin's final report releases it.
		if first {
			req.GrantID = "" // a refused first admission leaves no grant
		}
		return nil, rej, err
	}
	acc, upstreamModel := chosen.acc, chosen.upstream
	s.touch.used(acc.ID, key.KeyID, time.Now())
	return &admitReply{
		GrantID:       req.GrantID,
		RequestID:     req.RequestID,
		UserID:        key.UserID,
		APIKeyID:      key.KeyID,
		GroupID:       key.GroupID,
		Platform:      key.Platform,
		AccountID:     acc.ID,
		BaseURL:       acc.BaseURL,
		Headers:       upstreamHeaders(key.Platform, acc.APIKey),
		UpstreamModel: upstreamModel,
	}, nil, nil
}

// acquireSlots takes the user slot and an account slot for grantID in as few Redis round
// trips as possible: the user slot together with either the only candidate's slot or the
// live counts of all candidates in one pipeline, then (several candidates) the chosen
// account's slot. The user refusal wins over the selection's, as the user slot is checked
// first. On a refusal or error the slots this call took for a first admission are undone.
func (s *Service) acquireSlots(ctx context.Context, key store.KeyAuth, grantID string, first bool,
	cands []candidate, selRej *rejection) (*candidate, *rejection, error) {
	acqs := []slots.Acquisition{{Kind: slots.KindUser, ID: key.UserID, GrantID: grantID, Limit: key.UserConcurrency}}
	var countIDs []int64
	switch {
	case len(cands) == 1:
		a := cands[0].acc
		acqs = append(acqs, slots.Acquisition{Kind: slots.KindAccount, ID: a.ID, GrantID: grantID, Limit: a.Concurrency})
	case len(cands) > 1:
		countIDs = make([]int64, len(cands))
		for i := range cands {
			countIDs[i] = cands[i].acc.ID
		}
	}
	held, live, err := s.slots.AcquireAndCount(ctx, acqs, slots.KindAccount, countIDs)
	if err != nil {
		s.undoSlots(ctx, first, key.UserID, grantID, acqs[1:])
		return nil, nil, err
	}
	if !held[0] {
		if len(acqs) > 1 && held[1] {
			s.undoSlots(ctx, false, key.UserID, grantID, acqs[1:])
		}
		return nil, rejectUserConcurrency, nil
	}
	if selRej != nil {
		s.undoSlots(ctx, first, key.UserID, grantID, nil)
		return nil, selRej, nil
	}
	var chosen *candidate
	if len(cands) == 1 {
		if held[1] {
			chosen = &cands[0]
		}
	} else if chosen, err = s.acquireBest(ctx, cands, live, grantID); err != nil {
		s.undoSlots(ctx, first, key.UserID, grantID, nil)
		return nil, nil, err
	}
	if chosen == nil {
		s.undoSlots(ctx, first, key.UserID, grantID, nil)
		return nil, rejectNoAccount, nil
	}
	return chosen, nil, nil
}

// undoSlots releases what an admission took before it was refused: the user slot of a first
// admission (a re-admission keeps its grant's) and the given account acquisitions, in one
// round trip, detached from the request so that a cancelled request still cleans up.
func (s *Service) undoSlots(ctx context.Context, first bool, userID int64, grantID string, accounts []slots.Acquisition) {
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

// authenticate resolves a presented key through the 2 s cache; ok is false for an unknown
// or unservable key (cached too, so a flood of bad keys does not reach PostgreSQL).
func (s *Service) authenticate(ctx context.Context, apiKey string) (store.KeyAuth, bool, error) {
	sum := sha256.Sum256([]byte(apiKey))
	hash := hex.EncodeToString(sum[:])
	res, err := s.keys.get(ctx, hash, func(ctx context.Context) (keyResult, error) {
		a, err := s.store.AuthenticateKey(ctx, hash)
		if errors.Is(err, store.ErrKeyNotFound) {
			return keyResult{}, nil
		}
		if err != nil {
			return keyResult{}, err
		}
		return keyResult{auth: a, ok: true}, nil
	})
	if err != nil {
		return store.KeyAuth{}, false, fmt.Errorf("authenticating key: %w", err)
	}
	return res.auth, res.ok, nil
}

// upstreamHeaders are the credential headers the plugin sets on the upstream request.
func upstreamHeaders(platform, apiKey string) map[string]string {
	if platform == "anthropic" {
		return map[string]string{"x-api-key": apiKey, "anthropic-version": anthropicVersion}
	}
	return map[string]string{"Authorization": "Bearer " + apiKey}
}

func newGrantID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go ≥ 1.24)
	return "g_" + hex.EncodeToString(b[:])
}
