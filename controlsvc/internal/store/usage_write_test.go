package store

import (
	"context"
	"errors"
	"testing"
)

func TestWriteUsageIsIdempotent(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	user := admSQL(t, st, `INSERT INTO users (name, balance_micros) VALUES ('u', 1000000) RETURNING id`)
	u := UsageWrite{
		RequestID: "req_1", GrantID: "g_1", UserID: user, APIKeyID: 2, GroupID: 3, AccountID: 4,
		Path: "/v1/responses", Model: "gpt-4o", UpstreamModel: "gpt-4o-2024-08-06", Stream: true, Status: 200,
		InputTokens: 10, OutputTokens: 20, CacheReadTokens: 3, CacheCreationTokens: 4, CostMicros: 1500,
		DurationMs: 900, FirstTokenMs: 120, Attempts: 2, AttemptDetails: []byte(`[{"account_id":1},{"account_id":4}]`),
	}
	for i, want := range []bool{true, false, false} {
		inserted, err := st.WriteUsage(ctx, u)
		if err != nil || inserted != want {
			t.Fatalf("write %d: WriteUsage = %v, %v; want %v", i, inserted, err, want)
		}
	}
	var balance, cost, account, in, out, cr, cc int64
	var attempts int
	var details, upstream string
	var stream bool
	if err := st.Pool.QueryRow(ctx, `SELECT u.balance_micros, r.cost_micros, r.account_id, r.input_tokens, r.output_tokens,
		r.cache_read_tokens, r.cache_creation_tokens, r.attempts, r.attempt_details::text, r.upstream_model, r.stream
		FROM users u, usage_records r WHERE u.id = $1 AND r.request_id = 'req_1'`, user).Scan(
		&balance, &cost, &account, &in, &out, &cr, &cc, &attempts, &details, &upstream, &stream); err != nil {
		t.Fatal(err)
	}
	if balance != 1_000_000-1500 || cost != 1500 || account != 4 || in != 10 || out != 20 || cr != 3 || cc != 4 ||
		attempts != 2 || details != `[{"account_id": 1}, {"account_id": 4}]` || upstream != "gpt-4o-2024-08-06" || !stream {
		t.Fatalf("stored balance=%d cost=%d account=%d tokens=%d/%d/%d/%d attempts=%d details=%s upstream=%s stream=%v",
			balance, cost, account, in, out, cr, cc, attempts, details, upstream, stream)
	}
}

func TestWriteUsageWithoutAccountOrCost(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	user := admSQL(t, st, `INSERT INTO users (name, balance_micros) VALUES ('u', 500) RETURNING id`)
	inserted, err := st.WriteUsage(ctx, UsageWrite{RequestID: "req_free", UserID: user, APIKeyID: 1, GroupID: 1, Status: 499,
		ErrorClass: "client_gone"})
	if err != nil || !inserted {
		t.Fatalf("WriteUsage = %v, %v", inserted, err)
	}
	var balance int64
	var account *int64
	var details string
	if err := st.Pool.QueryRow(ctx, `SELECT (SELECT balance_micros FROM users WHERE id = $1), account_id, attempt_details::text
		FROM usage_records WHERE request_id = 'req_free'`, user).Scan(&balance, &account, &details); err != nil {
		t.Fatal(err)
	}
	if balance != 500 || account != nil || details != "[]" {
		t.Fatalf("balance %d account %v details %s, want 500, NULL, []", balance, account, details)
	}
}

func TestGroupRateMicros(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	tests := []struct {
		rate string
		want int64
	}{
		{"1", 1_000_000}, {"1.5", 1_500_000}, {"0", 0}, {"0.000001", 1}, {"999999.999999", 999_999_999_999},
	}
	for _, tt := range tests {
		id := admSQL(t, st, `INSERT INTO groups (name, platform, rate_multiplier) VALUES ('rate-' || $1::text, 'openai', $1::numeric) RETURNING id`, tt.rate)
		got, err := st.GroupRateMicros(ctx, id)
		if err != nil || got != tt.want {
			t.Fatalf("rate %s: GroupRateMicros = %d, %v; want %d", tt.rate, got, err, tt.want)
		}
	}
	if _, err := st.GroupRateMicros(ctx, 999_999); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("unknown group: %v, want ErrGroupNotFound", err)
	}
}

func TestWriteUsageBatch(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	u1 := admSQL(t, st, `INSERT INTO users (name, balance_micros) VALUES ('a', 100000) RETURNING id`)
	u2 := admSQL(t, st, `INSERT INTO users (name, balance_micros) VALUES ('b', 100000) RETURNING id`)
	rec := func(id string, user, cost int64) UsageWrite {
		return UsageWrite{RequestID: id, UserID: user, APIKeyID: 1, GroupID: 1, Status: 200, CostMicros: cost}
	}
	tests := []struct {
		name         string
		give         []UsageWrite
		wantInserted []string
		wantBalances [2]int64 // after this case
	}{
		{
			name:         "new records of two users, one repeated within the batch",
			give:         []UsageWrite{rec("r1", u1, 10), rec("r2", u2, 20), rec("r1", u1, 10), rec("r3", u1, 5), rec("free", u2, 0)},
			wantInserted: []string{"free", "r1", "r2", "r3"},
			wantBalances: [2]int64{100000 - 15, 100000 - 20},
		},
		{
			name:         "a repeated batch stores and charges nothing",
			give:         []UsageWrite{rec("r2", u2, 20), rec("r1", u1, 10)},
			wantInserted: nil,
			wantBalances: [2]int64{100000 - 15, 100000 - 20},
		},
		{
			name:         "old and new records mixed: only the new one is charged",
			give:         []UsageWrite{rec("r3", u1, 5), rec("r4", u2, 7)},
			wantInserted: []string{"r4"},
			wantBalances: [2]int64{100000 - 15, 100000 - 27},
		},
		{
			name:         "empty batch",
			wantBalances: [2]int64{100000 - 15, 100000 - 27},
		},
	}
	for _, tt := range tests {
		// Sequential: each case builds on the records stored by the previous ones.
		got, err := st.WriteUsageBatch(ctx, tt.give)
		if err != nil {
			t.Fatalf("%s: WriteUsageBatch: %v", tt.name, err)
		}
		if len(got) != len(tt.wantInserted) {
			t.Fatalf("%s: inserted %v, want %v", tt.name, got, tt.wantInserted)
		}
		for _, id := range tt.wantInserted {
			if !got[id] {
				t.Fatalf("%s: inserted %v, want %v", tt.name, got, tt.wantInserted)
			}
		}
		for i, u := range []int64{u1, u2} {
			var b int64
			if err := st.Pool.QueryRow(ctx, `SELECT balance_micros FROM users WHERE id = $1`, u).Scan(&b); err != nil {
				t.Fatal(err)
			}
			if b != tt.wantBalances[i] {
				t.Fatalf("%s: user %d balance %d, want %d", tt.name, i, b, tt.wantBalances[i])
			}
		}
	}
	var n int64
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM usage_records`).Scan(&n); err != nil || n != 5 {
		t.Fatalf("%d usage records (%v), want 5", n, err)
	}
}
