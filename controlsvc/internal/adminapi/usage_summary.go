package adminapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// totalsView is the sums over a set of usage records.
type totalsView struct {
	Requests            int64       `json:"requests"`
	InputTokens         int64       `json:"input_tokens"`
	OutputTokens        int64       `json:"output_tokens"`
	CacheReadTokens     int64       `json:"cache_read_tokens"`
	CacheCreationTokens int64       `json:"cache_creation_tokens"`
	ReasoningTokens     int64       `json:"reasoning_tokens"`
	CostUSD             json.Number `json:"cost_usd"`
	InputCostUSD        json.Number `json:"input_cost_usd"`
	OutputCostUSD       json.Number `json:"output_cost_usd"`
	CacheReadCostUSD    json.Number `json:"cache_read_cost_usd"`
	CacheWriteCostUSD   json.Number `json:"cache_write_cost_usd"`
}

func newTotalsView(t store.UsageTotals) totalsView {
	return totalsView{
		Requests: t.Requests, InputTokens: t.InputTokens, OutputTokens: t.OutputTokens,
		CacheReadTokens: t.CacheReadTokens, CacheCreationTokens: t.CacheCreationTokens,
		ReasoningTokens: t.ReasoningTokens, CostUSD: formatMicros(t.CostMicros),
		InputCostUSD: formatMicros(t.InputCostMicros), OutputCostUSD: formatMicros(t.OutputCostMicros),
		CacheReadCostUSD: formatMicros(t.CacheReadCostMicros), CacheWriteCostUSD: formatMicros(t.CacheWriteCostMicros),
	}
}

// summaryItemView is one group: key is the day ("2026-03-01") or the model, else the api
// key, account or user id; the account of requests that reached none is null.
type summaryItemView struct {
	Key any `json:"key"`
	totalsView
}

type summaryView struct {
	GroupBy  string            `json:"group_by"`
	TimeZone string            `json:"time_zone"` // of the days
	Items    []summaryItemView `json:"items"`
	Total    totalsView        `json:"total"`
}

var groupByValues = strings.Join([]string{store.GroupByDay, store.GroupByModel, store.GroupByAPIKey,
	store.GroupByAccount, store.GroupByUser}, ", ")

func (a *API) usageSummary(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	groupBy := q.Get("group_by")
	if !store.ValidGroupBy(groupBy) {
		writeError(w, r, invalid("query parameter group_by must be one of %s", groupByValues))
		return
	}
	f, err := usageFilter(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	loc := billing.Location()
	groups, err := a.st.SummarizeUsage(r.Context(), f, groupBy, loc)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := summaryView{GroupBy: groupBy, TimeZone: loc.String(), Items: make([]summaryItemView, 0, len(groups))}
	var total store.UsageTotals
	for _, g := range groups {
		total.Add(g.UsageTotals)
		item := summaryItemView{totalsView: newTotalsView(g.UsageTotals)}
		switch {
		case groupBy == store.GroupByDay || groupBy == store.GroupByModel:
			item.Key = g.Key
		case groupBy == store.GroupByAccount && g.ID == 0:
			item.Key = nil
		default:
			item.Key = g.ID
		}
		out.Items = append(out.Items, item)
	}
	out.Total = newTotalsView(total)
	writeJSON(w, http.StatusOK, out)
}
