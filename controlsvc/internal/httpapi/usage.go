package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

type usageView struct {
	ID                  int64       `json:"id"`
	RequestID           string      `json:"request_id"`
	Path                string      `json:"path"`
	Model               string      `json:"model"`
	UpstreamModel       string      `json:"upstream_model"`
	Stream              bool        `json:"stream"`
	UserID              int64       `json:"user_id"`
	APIKeyID            int64       `json:"api_key_id"`
	GroupID             int64       `json:"group_id"`
	AccountID           int64       `json:"account_id"` // 0 when no account was reached
	Status              int         `json:"status"`
	ErrorClass          string      `json:"error_class"`
	InputTokens         int64       `json:"input_tokens"` // exclusive of cache tokens
	OutputTokens        int64       `json:"output_tokens"`
	CacheReadTokens     int64       `json:"cache_read_tokens"`
	CacheCreationTokens int64       `json:"cache_creation_tokens"`
	CostUSD             json.Number `json:"cost_usd"`
	DurationMs          int64       `json:"duration_ms"`
	FirstTokenMs        int64       `json:"first_token_ms"`
	Attempts            int         `json:"attempts"`
	CreatedAt           time.Time   `json:"created_at"`
}

func newUsageView(u store.UsageRecord) usageView {
	return usageView{
		ID: u.ID, RequestID: u.RequestID, Path: u.Path, Model: u.Model, UpstreamModel: u.UpstreamModel,
		Stream: u.Stream, UserID: u.UserID, APIKeyID: u.APIKeyID, GroupID: u.GroupID, AccountID: u.AccountID,
		Status: u.Status, ErrorClass: u.ErrorClass, InputTokens: u.InputTokens, OutputTokens: u.OutputTokens,
		CacheReadTokens: u.CacheReadTokens, CacheCreationTokens: u.CacheCreationTokens,
		CostUSD: formatMicros(u.CostMicros), DurationMs: u.DurationMs, FirstTokenMs: u.FirstTokenMs,
		Attempts: u.Attempts, CreatedAt: u.CreatedAt,
	}
}

// usageFilter reads the query: user_id, api_key_id, account_id, since (RFC 3339), limit.
func usageFilter(r *http.Request) (store.UsageFilter, error) {
	q := r.URL.Query()
	var f store.UsageFilter
	var err error
	if f.UserID, err = queryID(q, "user_id"); err != nil {
		return f, err
	}
	if f.APIKeyID, err = queryID(q, "api_key_id"); err != nil {
		return f, err
	}
	if f.AccountID, err = queryID(q, "account_id"); err != nil {
		return f, err
	}
	if f.Since, err = queryTime(q, "since"); err != nil {
		return f, err
	}
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > store.MaxUsageLimit {
			return f, invalid("query parameter limit must be an integer between 1 and %d", store.MaxUsageLimit)
		}
		f.Limit = n
	}
	return f, nil
}

func (a *API) listUsage(w http.ResponseWriter, r *http.Request) {
	f, err := usageFilter(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	records, err := a.st.ListUsage(r.Context(), f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	views := make([]usageView, 0, len(records))
	for _, u := range records {
		views = append(views, newUsageView(u))
	}
	writeList(w, views)
}
