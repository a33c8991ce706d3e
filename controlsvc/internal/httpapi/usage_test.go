package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func insertUsage(t *testing.T, e *env, reqID string, user, key, account int64, cost int64, at time.Time) {
	t.Helper()
	_, err := e.st.Pool.Exec(t.Context(), `
INSERT INTO usage_records (request_id, user_id, api_key_id, group_id, account_id, path, model, upstream_model,
    stream, status, error_class, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
    cost_micros, duration_ms, first_token_ms, attempts, created_at)
VALUES ($1, $2, $3, 7, NULLIF($4::bigint, 0), '/v1/responses', 'gpt-4o', 'gpt-4o-2024-08-06', true, 200, '',
    100, 50, 30, 5, $5, 1200, 150, 2, $6)`, reqID, user, key, account, cost, at)
	if err != nil {
		t.Fatal(err)
	}
}

func TestUsageListing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	insertUsage(t, e, "req-1", 1, 11, 101, 1_500_000, base)
	insertUsage(t, e, "req-2", 1, 12, 102, 1, base.Add(time.Minute))
	insertUsage(t, e, "req-3", 2, 21, 101, 100_000, base.Add(2*time.Minute))
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
		{"since", "?since=" + url.QueryEscape(base.Add(time.Minute).Format(time.RFC3339)), []string{"req-4", "req-3", "req-2"}},
		{"since with offset", "?since=" + url.QueryEscape("2026-03-01T14:02:00+02:00"), []string{"req-4", "req-3"}},
		{"since with unencoded plus", "?since=2026-03-01T14:02:00+02:00", []string{"req-4", "req-3"}},
		{"limit", "?limit=1", []string{"req-4"}},
		{"combined", "?user_id=2&account_id=101", []string{"req-3"}},
		{"no match", "?user_id=5", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var list listBody[usageView]
			e.mustCall(http.MethodGet, "/api/v1/admin/usage"+tt.query, nil, http.StatusOK, &list)
			var got []string
			for _, u := range list.Items {
				got = append(got, u.RequestID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("request ids = %v, want %v", got, tt.want)
			}
		})
	}

	var list listBody[usageView]
	e.mustCall(http.MethodGet, "/api/v1/admin/usage?api_key_id=11", nil, http.StatusOK, &list)
	if len(list.Items) != 1 {
		t.Fatalf("items = %+v", list.Items)
	}
	want := usageView{
		ID: list.Items[0].ID, RequestID: "req-1", Path: "/v1/responses", Model: "gpt-4o", UpstreamModel: "gpt-4o-2024-08-06",
		Stream: true, UserID: 1, APIKeyID: 11, GroupID: 7, AccountID: 101, Status: 200, InputTokens: 100, OutputTokens: 50,
		CacheReadTokens: 30, CacheCreationTokens: 5, CostUSD: "1.5", DurationMs: 1200, FirstTokenMs: 150, Attempts: 2,
		CreatedAt: list.Items[0].CreatedAt,
	}
	if list.Items[0] != want || !list.Items[0].CreatedAt.Equal(base) {
		t.Errorf("record = %+v\nwant     %+v", list.Items[0], want)
	}
	e.mustCall(http.MethodGet, "/api/v1/admin/usage?user_id=1", nil, http.StatusOK, &list)
	if list.Items[0].CostUSD != "0.000001" {
		t.Errorf("cost_usd of 1 micro = %s, want 0.000001", list.Items[0].CostUSD)
	}
	e.mustCall(http.MethodGet, "/api/v1/admin/usage?api_key_id=21", nil, http.StatusOK, &list)
	if list.Items[0].AccountID != 0 || list.Items[0].CostUSD != "0" {
		t.Errorf("record without account = %+v", list.Items[0])
	}
}

func TestUsageValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name  string
		query string
		msg   string
	}{
		{"user not a number", "?user_id=x", "user_id must be a positive integer"},
		{"api key zero", "?api_key_id=0", "api_key_id must be a positive integer"},
		{"account overflow", "?account_id=99999999999999999999", "account_id must be a positive integer"},
		{"since not rfc3339", "?since=yesterday", "since must be an RFC 3339 timestamp"},
		{"since date only", "?since=2026-01-02", "since must be an RFC 3339 timestamp"},
		{"limit zero", "?limit=0", "limit must be an integer between 1 and 1000"},
		{"limit too big", "?limit=1001", "limit must be an integer between 1 and 1000"},
		{"limit text", "?limit=all", "limit must be an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodGet, "/api/v1/admin/usage"+tt.query, nil, http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
}
