package adminapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// The admin usage API (docs/billing.md, "Usage API"): a paginated listing, summaries and
// one request's record with its attempts.

type usageView struct {
	ID                  int64       `json:"id"`
	RequestID           string      `json:"request_id"`
	Path                string      `json:"path"`
	Model               string      `json:"model"`
	UpstreamModel       string      `json:"upstream_model"`
	ServedModel         *string     `json:"served_model"` // a fallback's model; null: the requested one
	Warnings            []string    `json:"warnings"`     // what a converted request could not carry over; [] none
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
	ReasoningTokens     int64       `json:"reasoning_tokens"` // part of output_tokens
	UsageSource         string      `json:"usage_source"`     // upstream | estimate
	Priced              bool        `json:"priced"`
	CostUSD             json.Number `json:"cost_usd"`
	InputCostUSD        json.Number `json:"input_cost_usd"`
	OutputCostUSD       json.Number `json:"output_cost_usd"`
	CacheReadCostUSD    json.Number `json:"cache_read_cost_usd"`
	CacheWriteCostUSD   json.Number `json:"cache_write_cost_usd"`
	RateMultiplier      json.Number `json:"rate_multiplier"`
	BillingMode         string      `json:"billing_mode"`
	SubscriptionID      *int64      `json:"subscription_id"`
	ReservedUSD         json.Number `json:"reserved_usd"`
	AdmissionMs         int64       `json:"admission_ms"`
	UpstreamMs          int64       `json:"upstream_ms"`
	FirstTokenMs        int64       `json:"first_token_ms"`
	DurationMs          int64       `json:"duration_ms"`
	Attempts            int         `json:"attempts"` // the number of attempts; the list is in the detail view
	CreatedAt           time.Time   `json:"created_at"`
}

func newUsageView(u store.UsageRecord) usageView {
	return usageView{
		ID: u.ID, RequestID: u.RequestID, Path: u.Path, Model: u.Model, UpstreamModel: u.UpstreamModel,
		ServedModel: u.ServedModel, Warnings: nonNilStrings(u.Warnings),
		Stream: u.Stream, UserID: u.UserID, APIKeyID: u.APIKeyID, GroupID: u.GroupID, AccountID: u.AccountID,
		Status: u.Status, ErrorClass: u.ErrorClass, InputTokens: u.InputTokens, OutputTokens: u.OutputTokens,
		CacheReadTokens: u.CacheReadTokens, CacheCreationTokens: u.CacheCreationTokens,
		ReasoningTokens: u.ReasoningTokens, UsageSource: u.UsageSource, Priced: u.Priced, CostUSD: formatMicros(u.CostMicros),
		InputCostUSD: formatMicros(u.InputCostMicros), OutputCostUSD: formatMicros(u.OutputCostMicros),
		CacheReadCostUSD: formatMicros(u.CacheReadCostMicros), CacheWriteCostUSD: formatMicros(u.CacheWriteCostMicros),
		RateMultiplier: formatMicros(u.RateMicros), BillingMode: u.BillingMode, SubscriptionID: u.SubscriptionID,
		ReservedUSD: formatMicros(u.ReservedMicros), AdmissionMs: u.AdmissionMs, UpstreamMs: u.UpstreamMs,
		FirstTokenMs: u.FirstTokenMs, DurationMs: u.DurationMs, Attempts: u.Attempts, CreatedAt: u.CreatedAt,
	}
}

type attemptView struct {
	Attempt             int         `json:"attempt"`
	AccountID           int64       `json:"account_id"` // 0 when none
	Status              int         `json:"status"`     // 0 when no upstream response came
	ErrorClass          string      `json:"error_class"`
	InputTokens         int64       `json:"input_tokens"`
	OutputTokens        int64       `json:"output_tokens"`
	CacheReadTokens     int64       `json:"cache_read_tokens"`
	CacheCreationTokens int64       `json:"cache_creation_tokens"`
	ReasoningTokens     int64       `json:"reasoning_tokens"`
	UsageSource         string      `json:"usage_source"` // upstream | estimate
	CostUSD             json.Number `json:"cost_usd"`     // at list price × rate, what the account consumed
	Billed              bool        `json:"billed"`       // the answering attempt, the one the user paid for
	LatencyMs           int64       `json:"latency_ms"`
	FirstTokenMs        int64       `json:"first_token_ms"`
	// Why the attempt ended, besides status and error_class (docs/billing.md, "Usage API").
	BreakerOpen        bool      `json:"breaker_open"`         // its failure opened its (account, model) breaker
	HedgeLost          bool      `json:"hedge_lost"`           // cancelled: the other hedged attempt won
	RetriedSameAccount bool      `json:"retried_same_account"` // it failed and the next attempt went to the same account
	CreatedAt          time.Time `json:"created_at"`
	attemptRouteView
}

type usagePageView struct {
	Items      []usageView `json:"items"`
	NextCursor *string     `json:"next_cursor"` // null on the last page
}

// cursorPrefix versions the opaque cursor: base64url("u1:" + the last id of the page).
const cursorPrefix = "u1:"

func encodeCursor(id int64) *string {
	if id == 0 {
		return nil
	}
	c := base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(id, 10)))
	return &c
}

func decodeCursor(raw string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err == nil {
		if s, ok := strings.CutPrefix(string(b), cursorPrefix); ok {
			if id, err := strconv.ParseInt(s, 10, 64); err == nil && id > 0 {
				return id, nil
			}
		}
	}
	return 0, invalid("query parameter cursor is not a cursor returned by this API")
}

// usageFilter reads the filters shared by the listing and the summary: user_id, api_key_id,
// account_id, group_id, model, status, from and to (RFC 3339; since is from's old name).
func usageFilter(q url.Values) (store.UsageFilter, error) {
	var f store.UsageFilter
	for _, p := range []struct {
		name string
		dst  *int64
	}{
		{"user_id", &f.UserID}, {"api_key_id", &f.APIKeyID}, {"account_id", &f.AccountID}, {"group_id", &f.GroupID},
	} {
		v, err := queryID(q, p.name)
		if err != nil {
			return f, err
		}
		*p.dst = v
	}
	if q.Has("model") {
		f.Model = strings.TrimSpace(q.Get("model"))
		if f.Model == "" {
			return f, invalid("query parameter model must not be empty")
		}
	}
	if raw := q.Get("status"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 100 || n > 599 {
			return f, invalid("query parameter status must be an HTTP status between 100 and 599")
		}
		f.Status = n
	}
	var err error
	if q.Get("from") != "" && q.Get("since") != "" {
		return f, invalid("query parameters from and since are the same; give one")
	}
	from := "from"
	if q.Get("since") != "" {
		from = "since"
	}
	if f.From, err = queryTime(q, from); err != nil {
		return f, err
	}
	if f.To, err = queryTime(q, "to"); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, invalid("query parameter from must be before to")
	}
	return f, nil
}

func (a *API) listUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := usageFilter(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var cursor int64
	if raw := q.Get("cursor"); raw != "" {
		if cursor, err = decodeCursor(raw); err != nil {
			writeError(w, r, err)
			return
		}
	}
	limit := store.DefaultUsageLimit
	if raw := q.Get("limit"); raw != "" {
		limit, err = strconv.Atoi(raw)
		if err != nil || limit < 1 || limit > store.MaxUsageLimit {
			writeError(w, r, invalid("query parameter limit must be an integer between 1 and %d", store.MaxUsageLimit))
			return
		}
	}
	page, err := a.st.ListUsage(r.Context(), f, cursor, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	views := make([]usageView, 0, len(page.Records))
	for _, u := range page.Records {
		views = append(views, newUsageView(u))
	}
	writeJSON(w, http.StatusOK, usagePageView{Items: views, NextCursor: encodeCursor(page.NextCursor)})
}

// nonNilStrings renders a missing list as [] rather than null.
func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
