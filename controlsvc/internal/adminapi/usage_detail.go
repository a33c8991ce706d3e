package adminapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// RouteReader reads the routing explanation of a request not settled yet (Redis,
// routing.Log); nil entries when there is none.
type RouteReader interface {
	Read(ctx context.Context, requestID string) ([]routing.Entry, error)
}

var _ RouteReader = (*routing.Log)(nil)

// maxRequestIDLen bounds a request id looked up: the gateway admits none longer.
const maxRequestIDLen = 128

// usageDetailView is one record with its attempts (its attempts list replaces the count)
// and its routing explanation (docs/design.md, "Routing explanations"). A request not
// settled yet has no record: it is shown with settled false, its request id and its routing
// only.
type usageDetailView struct {
	usageView
	Attempts []attemptView `json:"attempts"`
	Settled  bool          `json:"settled"`
	Routing  []routeView   `json:"routing"` // one entry per admission, in order; [] when none was recorded
}

type pendingUsageView struct {
	RequestID string        `json:"request_id"`
	Settled   bool          `json:"settled"`
	Attempts  []attemptView `json:"attempts"`
	Routing   []routeView   `json:"routing"`
}

// routeView is one admission of the request: routing.Entry with its number.
type routeView struct {
	Admission int `json:"admission"` // from 1
	routing.Entry
}

// attemptRouteView is the admission that granted an attempt's account, in the attempt.
type attemptRouteView struct {
	Admission     *int                `json:"admission"` // null when unknown
	Candidates    []routing.Candidate `json:"candidates"`
	CandidatesCut int                 `json:"candidates_cut"`
}

func (a *API) getUsage(w http.ResponseWriter, r *http.Request) {
	requestID := mux.Vars(r)["request_id"]
	notFound := &requestError{status: http.StatusNotFound, typ: typeNotFound,
		message: "no usage record for request " + strconv.Quote(truncateID(requestID))}
	if len(requestID) > maxRequestIDLen {
		writeError(w, r, notFound)
		return
	}
	rec, err := a.st.GetUsage(r.Context(), requestID)
	if errors.Is(err, store.ErrUsageNotFound) {
		a.getPendingUsage(w, r, requestID, notFound)
		return
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	attempts, err := a.st.UsageAttempts(r.Context(), requestID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	raw, err := a.st.UsageRouting(r.Context(), requestID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	entries, err := routing.Decode(raw)
	if err != nil {
		a.log.Warn("unreadable routing explanation", "request_id", requestID, "error", err)
		entries = nil
	}
	if raw == nil && a.routes != nil {
		// Not moved at settlement (Redis was unreachable then): it may still be there.
		if entries, err = a.routes.Read(r.Context(), requestID); err != nil {
			a.log.Warn("reading a routing explanation", "request_id", requestID, "error", err)
		}
	}
	views := attemptViews(attempts, rec.Attempts, entries)
	writeJSON(w, http.StatusOK, usageDetailView{usageView: newUsageView(rec), Attempts: views,
		Settled: true, Routing: routeViews(entries)})
}

// getPendingUsage answers for a request without a record: its routing explanation from
// Redis while it is in flight, else 404.
func (a *API) getPendingUsage(w http.ResponseWriter, r *http.Request, requestID string, notFound error) {
	if a.routes == nil {
		writeError(w, r, notFound)
		return
	}
	entries, err := a.routes.Read(r.Context(), requestID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if len(entries) == 0 {
		writeError(w, r, notFound)
		return
	}
	writeJSON(w, http.StatusOK, pendingUsageView{RequestID: requestID, Attempts: []attemptView{},
		Routing: routeViews(entries)})
}

func attemptViews(attempts []store.UsageAttempt, billed int, entries []routing.Entry) []attemptView {
	flags := make([]routing.AttemptFlags, len(attempts))
	for i, at := range attempts {
		flags[i] = routing.AttemptFlags{AccountID: at.AccountID, RetriedSameAccount: at.RetriedSameAccount, HedgeLost: at.HedgeLost}
	}
	by, _ := routing.Match(flags, entries)
	views := make([]attemptView, 0, len(attempts))
	for i, at := range attempts {
		rv := attemptRouteView{Candidates: []routing.Candidate{}}
		if j := by[i]; j >= 0 {
			n := j + 1
			rv = attemptRouteView{Admission: &n, Candidates: entries[j].Candidates, CandidatesCut: entries[j].CandidatesCut}
			if rv.Candidates == nil {
				rv.Candidates = []routing.Candidate{}
			}
		}
		views = append(views, attemptView{
			Attempt: at.Attempt, AccountID: at.AccountID, Status: at.Status, ErrorClass: at.ErrorClass,
			InputTokens: at.InputTokens, OutputTokens: at.OutputTokens, CacheReadTokens: at.CacheReadTokens,
			CacheCreationTokens: at.CacheCreationTokens, ReasoningTokens: at.ReasoningTokens,
			UsageSource: at.UsageSource, CostUSD: formatMicros(at.CostMicros), Billed: at.Attempt == billed,
			LatencyMs: at.LatencyMs, FirstTokenMs: at.FirstTokenMs, BreakerOpen: at.BreakerOpen,
			HedgeLost: at.HedgeLost, RetriedSameAccount: at.RetriedSameAccount, CreatedAt: at.CreatedAt,
			attemptRouteView: rv,
		})
	}
	return views
}

func routeViews(entries []routing.Entry) []routeView {
	out := make([]routeView, 0, len(entries))
	for i, e := range entries {
		if e.Candidates == nil {
			e.Candidates = []routing.Candidate{}
		}
		out = append(out, routeView{Admission: i + 1, Entry: e})
	}
	return out
}

// truncateID cuts a request id echoed in an error to the longest the gateway admits.
func truncateID(id string) string {
	if len(id) > maxRequestIDLen {
		return id[:maxRequestIDLen]
	}
	return id
}
