package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

// report is one completion report (docs/design.md, "/internal/v1/reports").
type report struct {
	GrantID       string          `json:"grant_id"`
	RequestID     string          `json:"request_id"`
	UserID        int64           `json:"user_id"`
	APIKeyID      int64           `json:"api_key_id"`
	GroupID       int64           `json:"group_id"`
	AccountID     int64           `json:"account_id"`
	Path          string          `json:"path"`
	Model         string          `json:"model"`
	UpstreamModel string          `json:"upstream_model"`
	Stream        bool            `json:"stream"`
	Status        int             `json:"status"`
	ErrorClass    string          `json:"error_class"`
	UsageFormat   string          `json:"usage_format"`
	Usage         json.RawMessage `json:"usage"`
	FirstTokenMs  int64           `json:"first_token_ms"`
	DurationMs    int64           `json:"duration_ms"`
	Attempts      []attempt       `json:"attempts"`
}

// attempt is one upstream attempt of a request. retry_after and ratelimit_reset are
// optional: when the last attempt was a 429 they set the cooldown as at re-admission.
type attempt struct {
	AccountID      int64  `json:"account_id"`
	Status         int    `json:"status"`
	ErrorClass     string `json:"error_class"`
	DurationMs     int64  `json:"duration_ms"`
	RetryAfter     string `json:"retry_after,omitempty"`
	RatelimitReset string `json:"ratelimit_reset,omitempty"`
}

type reportsRequest struct {
	Reports []report `json:"reports"`
}

type reportsReply struct {
	Accepted int `json:"accepted"`
}

var errInvalidReport = errors.New("report lacks request_id or user_id")

// handleReports stores a batch of reports. It answers 200 only when every valid report is
// stored (or was already), so the plugin retries the batch otherwise; duplicates are
// acknowledged and ignored. Slots are released either way: a release is idempotent and
// the retry will find them gone.
func (s *Service) handleReports(w http.ResponseWriter, r *http.Request) {
	var req reportsRequest
	if err := decodeBody(w, r, maxReportBody, &req); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "Failed to parse reports: "+err.Error())
		return
	}
	ctx := context.WithoutCancel(r.Context()) // a half-processed batch helps nobody
	accepted := 0
	var firstErr error
	for i := range req.Reports {
		err := s.processReport(ctx, &req.Reports[i])
		switch {
		case errors.Is(err, errInvalidReport):
			// Retrying cannot fix it: log and drop it rather than block the plugin's queue.
			s.log.Error("dropping invalid report", "request_id", req.Reports[i].RequestID,
				"grant_id", req.Reports[i].GrantID, "error", err)
		case err != nil && firstErr == nil:
			firstErr = err
		case err == nil:
			accepted++
		}
	}
	if firstErr != nil {
		writeInternalError(w, s.log, "storing reports", firstErr, "reports", len(req.Reports))
		return
	}
	writeJSON(w, http.StatusOK, reportsReply{Accepted: accepted})
}

// processReport writes one report and charges it, then releases its slots and marks the
// account of a failed last attempt.
func (s *Service) processReport(ctx context.Context, rep *report) error {
	defer s.releaseReport(ctx, rep)
	if rep.RequestID == "" || rep.UserID <= 0 {
		return errInvalidReport
	}
	tokens, err := usage.Normalize(rep.UsageFormat, rep.Usage)
	if err != nil {
		// The request happened; record it without tokens rather than lose it.
		s.log.Warn("unreadable usage", "request_id", rep.RequestID, "usage_format", rep.UsageFormat, "error", err)
	}
	cost, err := s.cost(ctx, rep, tokens)
	if err != nil {
		return err
	}
	details, err := json.Marshal(attemptsOrEmpty(rep.Attempts))
	if err != nil {
		return err
	}
	inserted, err := s.store.WriteUsage(ctx, store.UsageWrite{
		RequestID:           rep.RequestID,
		GrantID:             rep.GrantID,
		UserID:              rep.UserID,
		APIKeyID:            rep.APIKeyID,
		GroupID:             rep.GroupID,
		AccountID:           rep.AccountID,
		Path:                rep.Path,
		Model:               rep.Model,
		UpstreamModel:       rep.UpstreamModel,
		Stream:              rep.Stream,
		Status:              rep.Status,
		ErrorClass:          rep.ErrorClass,
		InputTokens:         tokens.Input,
		OutputTokens:        tokens.Output,
		CacheReadTokens:     tokens.CacheRead,
		CacheCreationTokens: tokens.CacheCreation,
		CostMicros:          cost,
		DurationMs:          rep.DurationMs,
		FirstTokenMs:        rep.FirstTokenMs,
		Attempts:            len(rep.Attempts),
		AttemptDetails:      details,
	})
	if err != nil {
		return err
	}
	if !inserted {
		s.log.Debug("duplicate report ignored", "request_id", rep.RequestID)
		return nil
	}
	if n := len(rep.Attempts); n > 0 {
		last := rep.Attempts[n-1]
		s.markAccount(ctx, failure{AccountID: last.AccountID, Status: last.Status, ErrorClass: last.ErrorClass,
			RetryAfter: last.RetryAfter, RatelimitReset: last.RatelimitReset})
	}
	return nil
}

// cost prices a report by its upstream model (else the requested model) times the group's
// rate multiplier. An unpriced model costs 0 for now.
func (s *Service) cost(ctx context.Context, rep *report, tokens usage.Tokens) (int64, error) {
	price, _, ok := usage.PriceFor(rep.UpstreamModel, rep.Model)
	if !ok {
		if tokens != (usage.Tokens{}) {
			s.log.Warn("no price for model, usage not charged", "request_id", rep.RequestID,
				"model", rep.Model, "upstream_model", rep.UpstreamModel)
		}
		return 0, nil
	}
	rate, err := s.rates.get(ctx, rep.GroupID, func(ctx context.Context) (int64, error) {
		r, err := s.store.GroupRateMicros(ctx, rep.GroupID)
		if errors.Is(err, store.ErrGroupNotFound) {
			s.log.Warn("report for unknown group, charging at rate 1", "group_id", rep.GroupID)
			return usage.RateUnit, nil
		}
		return r, err
	})
	if err != nil {
		return 0, err
	}
	return usage.Cost(tokens, price, rate), nil
}

// releaseReport frees the grant's user slot and every account slot it may hold.
func (s *Service) releaseReport(ctx context.Context, rep *report) {
	if rep.GrantID == "" {
		return
	}
	if rep.UserID > 0 {
		if err := s.slots.Release(ctx, slots.KindUser, rep.UserID, rep.GrantID); err != nil {
			s.log.Warn("releasing user slot", "grant_id", rep.GrantID, "error", err)
		}
	}
	seen := make(map[int64]bool, len(rep.Attempts)+1)
	release := func(id int64) {
		if id <= 0 || seen[id] {
			return
		}
		seen[id] = true
		if err := s.slots.Release(ctx, slots.KindAccount, id, rep.GrantID); err != nil {
			s.log.Warn("releasing account slot", "grant_id", rep.GrantID, "account_id", id, "error", err)
		}
	}
	release(rep.AccountID)
	for _, a := range rep.Attempts {
		release(a.AccountID)
	}
}

func attemptsOrEmpty(a []attempt) []attempt {
	if a == nil {
		return []attempt{}
	}
	return a
}
