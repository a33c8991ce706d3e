package adminapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
	"github.com/poolgate/poolgate/controlsvc/internal/routing"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// insertUsage writes a record directly: the admin API only reads them.
func insertUsage(t *testing.T, e *env, reqID string, user, key, account int64, cost int64, at time.Time) {
	t.Helper()
	insertUsageRow(t, e, reqID, user, key, 7, account, "gpt-4o", 200, cost, at)
}

func insertUsageRow(t *testing.T, e *env, reqID string, user, key, group, account int64, model string, status int,
	cost int64, at time.Time) {
	t.Helper()
	_, err := e.st.Pool.Exec(t.Context(), `
INSERT INTO usage_records (request_id, user_id, api_key_id, group_id, account_id, path, model, upstream_model,
    stream, status, error_class, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
    reasoning_tokens, cost_micros, input_cost_micros, output_cost_micros, duration_ms, first_token_ms, attempts,
    admission_ms, upstream_ms, created_at)
VALUES ($1, $2, $3, $4, NULLIF($5::bigint, 0), '/v1/responses', $6, $6 || '-2024-08-06', true, $7, '',
    100, 50, 30, 5, 20, $8::bigint, $8::bigint / 4, $8::bigint - $8::bigint / 4, 1200, 150, 2, 4, 1100, $9)`,
		reqID, user, key, group, account, model, status, cost, at)
	if err != nil {
		t.Fatal(err)
	}
	// Written outside settlement: count it into the key's totals too (GET /v1/usage).
	if err := e.st.RebuildKeyTotals(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func ids(items []usageView) []string {
	var out []string
	for _, u := range items {
		out = append(out, u.RequestID)
	}
	return out
}

func TestUsageListing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	insertUsage(t, e, "req-1", 1, 11, 101, 1_500_000, base)
	insertUsage(t, e, "req-2", 1, 12, 102, 1, base.Add(time.Minute))
	insertUsageRow(t, e, "req-3", 2, 21, 8, 101, "claude-x", 429, 100_000, base.Add(2*time.Minute))
	insertUsage(t, e, "req-4", 2, 21, 0, 0, base.Add(3*time.Minute))

	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"all newest first", "", []string{"req-4", "req-3", "req-2", "req-1"}},
		{"user", "?user_id=1", []string{"req-2", "req-1"}},
		{"api key", "?api_key_id=21", []string{"req-4", "req-3"}},
		{"account", "?account_id=101", []string{"req-3", "req-1"}},
		{"group", "?group_id=8", []string{"req-3"}},
		{"model", "?model=claude-x", []string{"req-3"}},
		{"status", "?status=200", []string{"req-4", "req-2", "req-1"}},
		{"from", "?from=" + url.QueryEscape(base.Add(time.Minute).Format(time.RFC3339)), []string{"req-4", "req-3", "req-2"}},
		{"since is from", "?since=" + url.QueryEscape(base.Add(time.Minute).Format(time.RFC3339)), []string{"req-4", "req-3", "req-2"}},
		{"from with offset", "?from=" + url.QueryEscape("2026-03-01T14:02:00+02:00"), []string{"req-4", "req-3"}},
		{"from with unencoded plus", "?from=2026-03-01T14:02:00+02:00", []string{"req-4", "req-3"}},
		{"to is exclusive", "?to=2026-03-01T12:02:00Z", []string{"req-2", "req-1"}},
		{"limit", "?limit=1", []string{"req-4"}},
		{"combined", "?user_id=2&account_id=101", []string{"req-3"}},
		{"no match", "?user_id=5", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var page usagePageView
			e.mustCall(http.MethodGet, "/api/v1/admin/usage"+tt.query, nil, http.StatusOK, &page)
			if got := ids(page.Items); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("request ids = %v, want %v", got, tt.want)
			}
		})
	}

	var page usagePageView
	e.mustCall(http.MethodGet, "/api/v1/admin/usage?api_key_id=11", nil, http.StatusOK, &page)
	if len(page.Items) != 1 || page.NextCursor != nil {
		t.Fatalf("page = %+v", page)
	}
	want := usageView{
		ID: page.Items[0].ID, RequestID: "req-1", Path: "/v1/responses", Model: "gpt-4o", UpstreamModel: "gpt-4o-2024-08-06",
		Stream: true, UserID: 1, APIKeyID: 11, GroupID: 7, AccountID: 101, Status: 200, InputTokens: 100, OutputTokens: 50,
		CacheReadTokens: 30, CacheCreationTokens: 5, ReasoningTokens: 20, UsageSource: "upstream", Priced: true, CostUSD: "1.5",
		InputCostUSD: "0.375", OutputCostUSD: "1.125", CacheReadCostUSD: "0", CacheWriteCostUSD: "0",
		RateMultiplier: "1", BillingMode: "balance", ReservedUSD: "0",
		AdmissionMs: 4, UpstreamMs: 1100, FirstTokenMs: 150, DurationMs: 1200, Attempts: 2,
		CreatedAt: page.Items[0].CreatedAt, Warnings: []string{},
	}
	if !reflect.DeepEqual(page.Items[0], want) || !page.Items[0].CreatedAt.Equal(base) {
		t.Errorf("record = %+v\nwant     %+v", page.Items[0], want)
	}
	e.mustCall(http.MethodGet, "/api/v1/admin/usage?user_id=1", nil, http.StatusOK, &page)
	if page.Items[0].CostUSD != "0.000001" {
		t.Errorf("cost_usd of 1 micro = %s, want 0.000001", page.Items[0].CostUSD)
	}
	e.mustCall(http.MethodGet, "/api/v1/admin/usage?api_key_id=21&status=200", nil, http.StatusOK, &page)
	if page.Items[0].AccountID != 0 || page.Items[0].CostUSD != "0" {
		t.Errorf("record without account = %+v", page.Items[0])
	}
	// next_cursor is JSON null on the last page, not missing.
	_, raw := e.call(http.MethodGet, "/api/v1/admin/usage", nil)
	var generic map[string]json.RawMessage
	if err := json.Unmarshal(raw, &generic); err != nil || string(generic["next_cursor"]) != "null" {
		t.Errorf("last page next_cursor = %s (%v), want null", generic["next_cursor"], err)
	}
}

// Paging with the opaque cursor while records arrive shows each earlier record once.
func TestUsagePaginationThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var want []string
	for i := range 12 {
		id := fmt.Sprintf("p-%02d", i)
		insertUsage(t, e, id, 1, 1, 1, 10, time.Now())
		want = append([]string{id}, want...)
	}
	var got []string
	path := "/api/v1/admin/usage?user_id=1&limit=5"
	for pages := 1; ; pages++ {
		var page usagePageView
		e.mustCall(http.MethodGet, path, nil, http.StatusOK, &page)
		got = append(got, ids(page.Items)...)
		insertUsage(t, e, fmt.Sprintf("late-%d", pages), 1, 1, 1, 10, time.Now())
		if page.NextCursor == nil {
			if pages != 3 {
				t.Fatalf("ended after %d pages, want 3", pages)
			}
			break
		}
		if pages > 3 {
			t.Fatalf("more than 3 pages: %v", got)
		}
		path = "/api/v1/admin/usage?user_id=1&limit=5&cursor=" + url.QueryEscape(*page.NextCursor)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("paged %v\nwant  %v", got, want)
	}
}

func TestUsageValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name string
		path string
		msg  string
	}{
		{"user not a number", "/usage?user_id=x", "user_id must be a positive integer"},
		{"api key zero", "/usage?api_key_id=0", "api_key_id must be a positive integer"},
		{"account overflow", "/usage?account_id=99999999999999999999", "account_id must be a positive integer"},
		{"group negative", "/usage?group_id=-1", "group_id must be a positive integer"},
		{"model empty", "/usage?model=%20", "model must not be empty"},
		{"status text", "/usage?status=ok", "status must be an HTTP status"},
		{"status out of range", "/usage?status=600", "status must be an HTTP status"},
		{"from not rfc3339", "/usage?from=yesterday", "from must be an RFC 3339 timestamp"},
		{"since date only", "/usage?since=2026-01-02", "since must be an RFC 3339 timestamp"},
		{"from and since", "/usage?from=2026-01-02T00:00:00Z&since=2026-01-02T00:00:00Z", "give one"},
		{"to not rfc3339", "/usage?to=now", "to must be an RFC 3339 timestamp"},
		{"from after to", "/usage?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from must be before to"},
		{"limit zero", "/usage?limit=0", "limit must be an integer between 1 and 500"},
		{"limit too big", "/usage?limit=501", "limit must be an integer between 1 and 500"},
		{"limit text", "/usage?limit=all", "limit must be an integer"},
		{"cursor garbage", "/usage?cursor=%21%21", "cursor is not a cursor returned by this API"},
		{"cursor of another kind", "/usage?cursor=" + "eDE6MTI", "cursor is not a cursor returned by this API"},
		{"summary without group_by", "/usage/summary", "group_by must be one of day, model, api_key, account, user"},
		{"summary unknown group_by", "/usage/summary?group_by=week", "group_by must be one of"},
		{"summary bad filter", "/usage/summary?group_by=day&user_id=x", "user_id must be a positive integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodGet, "/api/v1/admin"+tt.path, nil, http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
	e.wantError(http.MethodGet, "/api/v1/admin/usage/req_unknown", nil, http.StatusNotFound, "not_found_error",
		`no usage record for request "req_unknown"`)
	e.wantError(http.MethodPost, "/api/v1/admin/usage/summary", nil, http.StatusMethodNotAllowed, "invalid_request_error", "not allowed")
	if status, _ := e.callWithToken(http.MethodGet, "/api/v1/admin/usage/summary?group_by=day", nil, ""); status != http.StatusUnauthorized {
		t.Errorf("summary without the admin token = %d, want 401", status)
	}
}

// The record of a failover: both attempts listed, only the answering one billed, and by
// estimate (usage_source) in the record, the answering attempt and the listing.
func TestUsageDetailListsAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user, group := e.createUser("detail"), e.createGroup("detail", "openai")
	a1, a2 := e.createAccount("first", group), e.createAccount("second", group)
	_, err := e.st.WriteUsage(t.Context(), store.UsageWrite{
		RequestID: "req_fo", UserID: user, APIKeyID: 1, GroupID: group, AccountID: a2, Path: "/v1/responses",
		Model: "gpt-4o", Status: 200, InputTokens: 10, OutputTokens: 4, ReasoningTokens: 2, Priced: true,
		CostMicros: 65, InputCostMicros: 25, OutputCostMicros: 40, RateMicros: 1_000_000, DurationMs: 300,
		UsageSource: store.UsageEstimate,
		Attempts: []store.AttemptWrite{
			{AccountID: a1, Status: 429, ErrorClass: "upstream_status", LatencyMs: 3},
			{AccountID: a2, Status: 200, InputTokens: 10, OutputTokens: 4, ReasoningTokens: 2, CostMicros: 65,
				LatencyMs: 250, FirstTokenMs: 90, UsageSource: store.UsageEstimate},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got usageDetailView
	e.mustCall(http.MethodGet, "/api/v1/admin/usage/req_fo", nil, http.StatusOK, &got)
	if got.RequestID != "req_fo" || got.AccountID != a2 || got.CostUSD != "0.000065" || got.ReasoningTokens != 2 ||
		got.UsageSource != "estimate" {
		t.Errorf("record = %+v", got.usageView)
	}
	want := []attemptView{
		{Attempt: 1, AccountID: a1, Status: 429, ErrorClass: "upstream_status", UsageSource: "upstream", CostUSD: "0",
			LatencyMs: 3},
		{Attempt: 2, AccountID: a2, Status: 200, InputTokens: 10, OutputTokens: 4, ReasoningTokens: 2,
			UsageSource: "estimate", CostUSD: "0.000065", Billed: true, LatencyMs: 250, FirstTokenMs: 90},
	}
	for i := range got.Attempts {
		if i < len(want) {
			want[i].CreatedAt = got.Attempts[i].CreatedAt
			want[i].Candidates = []routing.Candidate{} // no routing recorded (usage_detail_test.go)
		}
	}
	if !reflect.DeepEqual(got.Attempts, want) {
		t.Errorf("attempts\n got %+v\nwant %+v", got.Attempts, want)
	}
	// In the detail view "attempts" is the list, not the count.
	_, raw := e.call(http.MethodGet, "/api/v1/admin/usage/req_fo", nil)
	var generic map[string]json.RawMessage
	if err := json.Unmarshal(raw, &generic); err != nil || len(generic["attempts"]) == 0 || generic["attempts"][0] != '[' {
		t.Errorf("attempts is %s, want a list", generic["attempts"])
	}
	var page usagePageView
	e.mustCall(http.MethodGet, fmt.Sprintf("/api/v1/admin/usage?user_id=%d", user), nil, http.StatusOK, &page)
	if len(page.Items) != 1 || page.Items[0].UsageSource != "estimate" {
		t.Errorf("listing = %+v, want the record with usage_source estimate", page.Items)
	}
}

type summaryBody struct {
	GroupBy  string `json:"group_by"`
	TimeZone string `json:"time_zone"`
	Items    []struct {
		Key any `json:"key"`
		totalsView
	} `json:"items"`
	Total totalsView `json:"total"`
}

func TestUsageSummary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC)
	insertUsage(t, e, "s1", 1, 11, 101, 1_000_000, base)
	insertUsage(t, e, "s2", 1, 12, 0, 250_001, base.Add(time.Hour))                      // no account
	insertUsageRow(t, e, "s3", 2, 21, 8, 101, "claude-x", 200, 3, base.Add(3*time.Hour)) // the next day
	tests := []struct {
		query    string
		wantKeys []any
		wantCost []string
	}{
		{"group_by=day", []any{"2026-03-01", "2026-03-02"}, []string{"1.250001", "0.000003"}},
		{"group_by=model", []any{"claude-x", "gpt-4o"}, []string{"0.000003", "1.250001"}},
		{"group_by=api_key", []any{11.0, 12.0, 21.0}, []string{"1", "0.250001", "0.000003"}},
		{"group_by=account", []any{nil, 101.0}, []string{"0.250001", "1.000003"}},
		{"group_by=user&model=gpt-4o", []any{1.0}, []string{"1.250001"}},
		{"group_by=user&from=2026-03-01T23:00:00Z", []any{1.0, 2.0}, []string{"0.250001", "0.000003"}},
	}
	for _, tt := range tests {
		var got summaryBody
		e.mustCall(http.MethodGet, "/api/v1/admin/usage/summary?"+tt.query, nil, http.StatusOK, &got)
		var keys []any
		var costs []string
		var requests int64
		var sum int64
		for _, it := range got.Items {
			keys = append(keys, it.Key)
			costs = append(costs, string(it.CostUSD))
			requests += it.Requests
			m, err := decimalTextToMicros(string(it.CostUSD))
			if err != nil {
				t.Fatal(err)
			}
			sum += m
			if it.InputTokens != 100*it.Requests || it.ReasoningTokens != 20*it.Requests {
				t.Errorf("%s: tokens of %v = %+v", tt.query, it.Key, it.totalsView)
			}
		}
		if !reflect.DeepEqual(keys, tt.wantKeys) || !reflect.DeepEqual(costs, tt.wantCost) || got.TimeZone != "UTC" {
			t.Errorf("%s: keys %v costs %v zone %s, want %v %v UTC", tt.query, keys, costs, got.TimeZone, tt.wantKeys, tt.wantCost)
		}
		total, _ := decimalTextToMicros(string(got.Total.CostUSD))
		if total != sum || got.Total.Requests != requests {
			t.Errorf("%s: total %+v is not the sum of the items (%d requests, %d micros)", tt.query, got.Total, requests, sum)
		}
	}
}

// Days follow POOLGATE_BILLING_TIMEZONE. Not parallel: the zone is process-wide, and
// parallel tests only start after the sequential ones finished.
func TestUsageSummaryDaysInTheBillingZone(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	billing.SetLocation(tokyo)
	defer billing.SetLocation(nil)
	e := newEnv(t)
	insertUsage(t, e, "z1", 1, 1, 1, 1, time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC)) // 23:00 in Tokyo
	insertUsage(t, e, "z2", 1, 1, 1, 2, time.Date(2026, 3, 1, 15, 0, 0, 0, time.UTC)) // 00:00 the next day
	var got summaryBody
	e.mustCall(http.MethodGet, "/api/v1/admin/usage/summary?group_by=day", nil, http.StatusOK, &got)
	if got.TimeZone != "Asia/Tokyo" || len(got.Items) != 2 || got.Items[0].Key != "2026-03-01" || got.Items[1].Key != "2026-03-02" {
		t.Fatalf("summary = %+v", got)
	}
}
