package gateway

import (
	"errors"
	"net/http"

	"github.com/poolgate/poolgate/controlsvc/internal/rules"
)

// maxUpstreamErrorBody bounds POST /internal/v1/upstream-error: 8 KiB of upstream body,
// which JSON escaping can grow up to six-fold, plus the other fields.
const maxUpstreamErrorBody = 64 << 10

// RuleSource hands out the current error passthrough rules; *rules.Cache implements it.
type RuleSource interface {
	Rules() *rules.Set
}

var _ RuleSource = (*rules.Cache)(nil)

type upstreamErrorRequest struct {
	GroupID  int64  `json:"group_id"`
	Platform string `json:"platform"`
	Path     string `json:"path"`
	Status   int    `json:"status"`
	Body     string `json:"body"`
}

type upstreamErrorReply struct {
	Matched        bool  `json:"matched"`
	Status         int   `json:"status,omitempty"`
	Body           any   `json:"body,omitempty"`
	RuleID         int64 `json:"rule_id,omitempty"`
	SkipMonitoring bool  `json:"skip_monitoring,omitempty"`
}

// handleUpstreamError applies the error passthrough rules to an upstream error the plugin
// is about to answer with: failover exhausted, or an error not worth failing over
// (docs/design.md, POST /internal/v1/upstream-error). It reads only the in-process rule
// cache, never the database.
func (s *Service) handleUpstreamError(w http.ResponseWriter, r *http.Request) {
	var req upstreamErrorRequest
	if err := decodeBody(w, r, maxUpstreamErrorBody, &req); err != nil {
		msg := "Failed to parse upstream error: " + err.Error()
		if errors.Is(err, errBodyTooLarge) {
			msg = "Upstream error report too large"
		}
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", msg)
		return
	}
	if req.Status < 100 || req.Status > 599 {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "status must be an HTTP status between 100 and 599")
		return
	}
	if s.rules == nil {
		writeJSON(w, http.StatusOK, upstreamErrorReply{})
		return
	}
	res, ok := s.rules.Rules().Match(rules.Input{Platform: req.Platform, Status: req.Status, Body: []byte(req.Body)})
	if !ok {
		writeJSON(w, http.StatusOK, upstreamErrorReply{})
		return
	}
	s.log.Debug("error passthrough rule matched", "rule_id", res.RuleID, "group_id", req.GroupID,
		"platform", req.Platform, "upstream_status", req.Status, "status", res.Status)
	writeJSON(w, http.StatusOK, upstreamErrorReply{
		Matched: true, Status: res.Status, Body: res.ClientBody(req.Path),
		RuleID: res.RuleID, SkipMonitoring: res.SkipMonitoring,
	})
}
