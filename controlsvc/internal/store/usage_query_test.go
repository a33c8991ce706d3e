package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// insertUsage writes a usage row directly: the admin side only reads them.
func insertUsage(t *testing.T, st *Store, reqID string, userID, keyID, accountID int64, createdAt time.Time) {
	t.Helper()
	_, err := st.Pool.Exec(context.Background(), `
INSERT INTO usage_records (request_id, user_id, api_key_id, group_id, account_id, model, upstream_model,
    status, error_class, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
    cost_micros, duration_ms, first_token_ms, attempts, created_at)
VALUES ($1, $2, $3, 1, NULLIF($4::bigint, 0), 'gpt-4o', 'gpt-4o-2024-08-06', 200, '', 10, 20, 3, 4,
    1500, 900, 120, 2, $5)`, reqID, userID, keyID, accountID, createdAt)
	if err != nil {
		t.Fatalf("inserting usage: %v", err)
	}
}

func TestListUsage(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// r1..r5, one minute apart; r5 reached no account.
	rows := []struct {
		user, key, account int64
	}{{1, 11, 101}, {1, 12, 102}, {2, 21, 101}, {1, 11, 101}, {2, 21, 0}}
	for i, r := range rows {
		insertUsage(t, st, fmt.Sprintf("r%d", i+1), r.user, r.key, r.account, base.Add(time.Duration(i)*time.Minute))
	}

	tests := []struct {
		name string
		give UsageFilter
		want []string
	}{
		{"all newest first", UsageFilter{}, []string{"r5", "r4", "r3", "r2", "r1"}},
		{"by user", UsageFilter{UserID: 1}, []string{"r4", "r2", "r1"}},
		{"by api key", UsageFilter{APIKeyID: 21}, []string{"r5", "r3"}},
		{"by account", UsageFilter{AccountID: 101}, []string{"r4", "r3", "r1"}},
		{"since is inclusive", UsageFilter{Since: base.Add(3 * time.Minute)}, []string{"r5", "r4"}},
		{"combined", UsageFilter{UserID: 1, AccountID: 101, Since: base.Add(time.Second)}, []string{"r4"}},
		{"limit", UsageFilter{Limit: 2}, []string{"r5", "r4"}},
		{"no match", UsageFilter{UserID: 3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			recs, err := st.ListUsage(ctx, tt.give)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, r.RequestID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ListUsage(%+v) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}

	recs, err := st.ListUsage(ctx, UsageFilter{APIKeyID: 12})
	if err != nil || len(recs) != 1 {
		t.Fatalf("ListUsage(key 12) = %v, %v", recs, err)
	}
	want := UsageRecord{
		ID: recs[0].ID, RequestID: "r2", UserID: 1, APIKeyID: 12, GroupID: 1, AccountID: 102,
		Model: "gpt-4o", UpstreamModel: "gpt-4o-2024-08-06", Status: 200, InputTokens: 10, OutputTokens: 20,
		CacheReadTokens: 3, CacheCreationTokens: 4, CostMicros: 1500, DurationMs: 900, FirstTokenMs: 120,
		Attempts: 2, CreatedAt: recs[0].CreatedAt,
	}
	if !reflect.DeepEqual(recs[0], want) || !recs[0].CreatedAt.Equal(base.Add(time.Minute)) {
		t.Errorf("record = %+v\nwant %+v", recs[0], want)
	}
}
