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

// handleReports stores a batch of reports in three steps, so that slots come free as soon
// as possible and PostgreSQL sees one transaction per batch rather than one per report:
//
//  1. every slot of the batch is released, in one pipelined Redis round trip, whatever
//     happens next (a release is idempotent, so a retried batch finds them gone);
//  2. the usage records of the valid reports are written and charged in one transaction,
//     idempotent on request_id within the batch and across batches;
//  3. the accounts of reports newly stored whose last attempt failed are marked.
//
// It answers 200 only when the write succeeded, so the plugin retries the batch otherwise.
// A report without request_id or user_id is dropped (retrying cannot fix it) and not
// counted; duplicates are acknowledged and counted.
func (s *Service) handleReports(w http.ResponseWriter, r *http.Request) {
	var req reportsRequest
	if err := decodeBody(w, r, maxReportBody, &req); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "Failed to parse reports: "+err.Error())
		return
	}
	ctx := context.WithoutCancel(r.Context()) // a half-processed batch helps nobody
	reps := req.Reports
	if err := s.slots.ReleaseMany(ctx, leasesOf(reps)); err != nil {
		// Not fatal: the leases expire by their TTL, and the retry releases them again.
		s.log.Warn("releasing slots of reports", "reports", len(reps), "error", err)
	}

	writes := make([]store.UsageWrite, 0, len(reps))
	valid := make([]*report, 0, len(reps))
	for i := range reps {
		rep := &reps[i]
		if rep.RequestID == "" || rep.UserID <= 0 {
			s.log.Error("dropping invalid report", "request_id", rep.RequestID, "grant_id", rep.GrantID,
				"error", "report lacks request_id or user_id")
			continue
		}
		u, err := s.usageWrite(ctx, rep)
		if err != nil {
			writeInternalError(w, s.log, "storing reports", err, "reports", len(reps))
			return
		}
		writes = append(writes, u)
		valid = append(valid, rep)
	}
	inserted, err := s.store.WriteUsageBatch(ctx, writes)
	if err != nil {
		writeInternalError(w, s.log, "storing reports", err, "reports", len(reps))
		return
	}

	marked := make(map[string]bool, len(inserted))
	for _, rep := range valid {
		if !inserted[rep.RequestID] || marked[rep.RequestID] {
			s.log.Debug("duplicate report ignored", "request_id", rep.RequestID)
			continue
		}
		marked[rep.RequestID] = true // a duplicate later in the batch was not stored
		if n := len(rep.Attempts); n > 0 {
			last := rep.Attempts[n-1]
			s.markAccount(ctx, failure{AccountID: last.AccountID, Status: last.Status, ErrorClass: last.ErrorClass,
				RetryAfter: last.RetryAfter, RatelimitReset: last.RatelimitReset,
				Model: upstreamOr(rep.UpstreamModel, rep.Model)})
		}
	}
	writeJSON(w, http.StatusOK, reportsReply{Accepted: len(valid)})
}

// usageWrite turns a valid report into its usage record, priced.
func (s *Service) usageWrite(ctx context.Context, rep *report) (store.UsageWrite, error) {
	tokens, err := usage.Normalize(rep.UsageFormat, rep.Usage)
	if err != nil {
		// The request happened; record it without tokens rather than lose it.
		s.log.Warn("unreadable usage", "request_id", rep.RequestID, "usage_format", rep.UsageFormat, "error", err)
	}
	cost, err := s.cost(ctx, rep, tokens)
	if err != nil {
		return store.UsageWrite{}, err
	}
	details, err := json.Marshal(attemptsOrEmpty(rep.Attempts))
	if err != nil {
		return store.UsageWrite{}, err
	}
	return store.UsageWrite{
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
	}, nil
}

// cost prices a report by the model sent upstream (the requested model when no mapping
// applied) times the group's rate multiplier. An unpriced model costs 0 for now.
func (s *Service) cost(ctx context.Context, rep *report, tokens usage.Tokens) (int64, error) {
	price, _, ok := s.prices.Table().Lookup(usage.PricedModel(rep.UpstreamModel, rep.Model))
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

// leasesOf lists every lease the reports' grants may hold: the user slot and the slot of
// each account the grant touched (the last one and every attempt's).
func leasesOf(reps []report) []slots.Lease {
	out := make([]slots.Lease, 0, 2*len(reps))
	for i := range reps {
		rep := &reps[i]
		if rep.GrantID == "" {
			continue
		}
		if rep.UserID > 0 {
			out = append(out, slots.Lease{Kind: slots.KindUser, ID: rep.UserID, GrantID: rep.GrantID})
		}
		first := len(out)
		add := func(id int64) {
			if id <= 0 {
				return
			}
			for _, l := range out[first:] {
				if l.ID == id {
					return
				}
			}
			out = append(out, slots.Lease{Kind: slots.KindAccount, ID: id, GrantID: rep.GrantID})
		}
		add(rep.AccountID)
		for _, a := range rep.Attempts {
			add(a.AccountID)
		}
	}
	return out
}

func attemptsOrEmpty(a []attempt) []attempt {
	if a == nil {
		return []attempt{}
	}
	return a
}
