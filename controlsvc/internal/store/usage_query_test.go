package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// usageRow is a record inserted directly: the admin side only reads them.
type usageRow struct {
	reqID                   string
	user, key, group, acct  int64
	model                   string
	status                  int
	in, out, cr, cw, reason int64
	costIn, costOut, costCR int64
	costCW                  int64
	at                      time.Time
}

func (r usageRow) cost() int64 { return r.costIn + r.costOut + r.costCR + r.costCW }

func insertUsage(t *testing.T, st *Store, r usageRow) {
	t.Helper()
	if r.model == "" {
		r.model = "gpt-4o"
	}
	if r.status == 0 {
		r.status = 200
	}
	if r.at.IsZero() {
		r.at = time.Now()
	}
	_, err := st.Pool.Exec(context.Background(), `
INSERT INTO usage_records (request_id, user_id, api_key_id, group_id, account_id, model, upstream_model,
    status, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
    cost_micros, input_cost_micros, output_cost_micros, cache_read_cost_micros, cache_write_cost_micros,
    duration_ms, first_token_ms, attempts, created_at)
VALUES ($1, $2, $3, $4, NULLIF($5::bigint, 0), $6, $6 || '-2024', $7, $8, $9, $10, $11, $12,
    $13, $14, $15, $16, $17, 900, 120, 1, $18)`,
		r.reqID, r.user, r.key, r.group, r.acct, r.model, r.status, r.in, r.out, r.cr, r.cw, r.reason,
		r.cost(), r.costIn, r.costOut, r.costCR, r.costCW, r.at)
	if err != nil {
		t.Fatalf("inserting usage: %v", err)
	}
}

func requestIDs(recs []UsageRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.RequestID)
	}
	return out
}

func TestListUsageFilters(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// r1..r6, one minute apart, inserted in order; r5 reached no account.
	rows := []usageRow{
		{user: 1, key: 11, group: 7, acct: 101},
		{user: 1, key: 12, group: 7, acct: 102, model: "claude-x"},
		{user: 2, key: 21, group: 8, acct: 101, status: 429},
		{user: 1, key: 11, group: 7, acct: 101},
		{user: 2, key: 21, group: 8, status: 503},
		{user: 3, key: 31, group: 9, acct: 103, model: "claude-x"},
	}
	for i, r := range rows {
		r.reqID = fmt.Sprintf("r%d", i+1)
		r.at = base.Add(time.Duration(i) * time.Minute)
		insertUsage(t, st, r)
	}
	tests := []struct {
		name string
		give UsageFilter
		want []string
	}{
		{"all newest first", UsageFilter{}, []string{"r6", "r5", "r4", "r3", "r2", "r1"}},
		{"by user", UsageFilter{UserID: 1}, []string{"r4", "r2", "r1"}},
		{"by api key", UsageFilter{APIKeyID: 21}, []string{"r5", "r3"}},
		{"by account", UsageFilter{AccountID: 101}, []string{"r4", "r3", "r1"}},
		{"by group", UsageFilter{GroupID: 8}, []string{"r5", "r3"}},
		{"by model", UsageFilter{Model: "claude-x"}, []string{"r6", "r2"}},
		{"by status", UsageFilter{Status: 429}, []string{"r3"}},
		{"from is inclusive", UsageFilter{From: base.Add(3 * time.Minute)}, []string{"r6", "r5", "r4"}},
		{"to is exclusive", UsageFilter{To: base.Add(2 * time.Minute)}, []string{"r2", "r1"}},
		{"from and to", UsageFilter{From: base.Add(time.Minute), To: base.Add(3 * time.Minute)}, []string{"r3", "r2"}},
		{"combined", UsageFilter{UserID: 1, AccountID: 101, From: base.Add(time.Second)}, []string{"r4"}},
		{"no match", UsageFilter{UserID: 4}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			page, err := st.ListUsage(ctx, tt.give, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := requestIDs(page.Records); !reflect.DeepEqual(got, tt.want) || page.NextCursor != 0 {
				t.Errorf("ListUsage = %v (next %d), want %v (next 0)", got, page.NextCursor, tt.want)
			}
		})
	}
}

// Paging through the records while new ones arrive shows every record that existed at the
// start exactly once, newest first, and ends with cursor 0.
func TestListUsagePaginationIsStableUnderInserts(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	var want []string
	for i := range 23 {
		id := fmt.Sprintf("old-%02d", i)
		insertUsage(t, st, usageRow{reqID: id, user: 1, key: 1, group: 1})
		want = append([]string{id}, want...)
	}
	insertUsage(t, st, usageRow{reqID: "other-user", user: 2, key: 2, group: 1})
	var got []string
	cursor, pages := int64(0), 0
	for {
		page, err := st.ListUsage(ctx, UsageFilter{UserID: 1}, cursor, 5)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, requestIDs(page.Records)...)
		// Records arriving between pages are newer than every cursor: never seen here.
		insertUsage(t, st, usageRow{reqID: fmt.Sprintf("new-%d", pages), user: 1, key: 1, group: 1})
		if page.NextCursor == 0 {
			break
		}
		if len(page.Records) != 5 {
			t.Fatalf("page %d has %d records and a next cursor", pages, len(page.Records))
		}
		cursor = page.NextCursor
	}
	if !reflect.DeepEqual(got, want) || pages != 5 {
		t.Fatalf("paged %d pages: %v\nwant 5 pages: %v", pages, got, want)
	}
	// An exact multiple of the limit ends with an empty-cursor page, not an empty page.
	page, err := st.ListUsage(ctx, UsageFilter{UserID: 2}, 0, 1)
	if err != nil || len(page.Records) != 1 || page.NextCursor != 0 {
		t.Fatalf("single record page = %+v, %v", page, err)
	}
	// The limit is capped.
	page, err = st.ListUsage(ctx, UsageFilter{}, 0, MaxUsageLimit+100)
	if err != nil || len(page.Records) != 23+1+pages {
		t.Fatalf("capped page: %d records, %v", len(page.Records), err)
	}
}

func TestSummarizeUsageSumsEqualTheRecords(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	// 2026-03-01 20:00 UTC is already 2026-03-02 in Tokyo.
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	var rows []usageRow
	for i := range 60 {
		r := usageRow{
			reqID: fmt.Sprintf("s%02d", i), user: int64(1 + i%3), key: int64(10 + i%4), group: 1,
			acct: int64(i % 3), model: []string{"gpt-4o", "claude-x"}[i%2],
			in: rng.Int64N(5000), out: rng.Int64N(5000), cr: rng.Int64N(1000), cw: rng.Int64N(1000),
			costIn: rng.Int64N(90000), costOut: rng.Int64N(90000), costCR: rng.Int64N(900), costCW: rng.Int64N(900),
			at: base.Add(time.Duration(i) * 37 * time.Minute),
		}
		r.reason = r.out / 3
		rows = append(rows, r)
		insertUsage(t, st, r)
	}
	totals := func(rs []usageRow) UsageTotals {
		var t UsageTotals
		for _, r := range rs {
			t.Add(UsageTotals{Requests: 1, InputTokens: r.in, OutputTokens: r.out, CacheReadTokens: r.cr,
				CacheCreationTokens: r.cw, ReasoningTokens: r.reason, CostMicros: r.cost(), InputCostMicros: r.costIn,
				OutputCostMicros: r.costOut, CacheReadCostMicros: r.costCR, CacheWriteCostMicros: r.costCW})
		}
		return t
	}
	// want groups the rows in Go, the way the summary must.
	want := func(key func(usageRow) (string, int64), keep func(usageRow) bool) []UsageGroup {
		byKey := map[[2]any][]usageRow{}
		for _, r := range rows {
			if keep(r) {
				k, id := key(r)
				byKey[[2]any{k, id}] = append(byKey[[2]any{k, id}], r)
			}
		}
		out := []UsageGroup{}
		for k, rs := range byKey {
			out = append(out, UsageGroup{Key: k[0].(string), ID: k[1].(int64), UsageTotals: totals(rs)})
		}
		slices.SortFunc(out, func(a, b UsageGroup) int {
			if a.Key != b.Key {
				return map[bool]int{true: -1, false: 1}[a.Key < b.Key]
			}
			return cmpInt64(a.ID, b.ID)
		})
		return out
	}
	all := func(usageRow) bool { return true }
	tests := []struct {
		name    string
		groupBy string
		filter  UsageFilter
		loc     *time.Location
		key     func(usageRow) (string, int64)
		keep    func(usageRow) bool
	}{
		{"day utc", GroupByDay, UsageFilter{}, nil,
			func(r usageRow) (string, int64) { return r.at.UTC().Format(time.DateOnly), 0 }, all},
		{"day tokyo", GroupByDay, UsageFilter{}, tokyo,
			func(r usageRow) (string, int64) { return r.at.In(tokyo).Format(time.DateOnly), 0 }, all},
		{"model", GroupByModel, UsageFilter{}, nil,
			func(r usageRow) (string, int64) { return r.model, 0 }, all},
		{"api key of user 2", GroupByAPIKey, UsageFilter{UserID: 2}, nil,
			func(r usageRow) (string, int64) { return "", r.key }, func(r usageRow) bool { return r.user == 2 }},
		{"account, none as 0", GroupByAccount, UsageFilter{}, nil,
			func(r usageRow) (string, int64) { return "", r.acct }, all},
		{"user in a time range", GroupByUser, UsageFilter{From: base.Add(3 * time.Hour), To: base.Add(20 * time.Hour)}, nil,
			func(r usageRow) (string, int64) { return "", r.user },
			func(r usageRow) bool {
				return !r.at.Before(base.Add(3*time.Hour)) && r.at.Before(base.Add(20*time.Hour))
			}},
		{"nothing matches", GroupByModel, UsageFilter{Model: "none"}, nil,
			func(r usageRow) (string, int64) { return r.model, 0 }, func(usageRow) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := st.SummarizeUsage(ctx, tt.filter, tt.groupBy, tt.loc)
			if err != nil {
				t.Fatal(err)
			}
			if w := want(tt.key, tt.keep); !reflect.DeepEqual(got, w) {
				t.Errorf("summary\n got %+v\nwant %+v", got, w)
			}
		})
	}
	if _, err := st.SummarizeUsage(ctx, UsageFilter{}, "week", nil); err == nil {
		t.Error("unknown grouping accepted")
	}
}

func TestGetUsageUnknown(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	if _, err := st.GetUsage(context.Background(), "req_nope"); !errors.Is(err, ErrUsageNotFound) {
		t.Fatalf("GetUsage = %v, want ErrUsageNotFound", err)
	}
	if a, err := st.UsageAttempts(context.Background(), "req_nope"); err != nil || len(a) != 0 {
		t.Fatalf("UsageAttempts = %v, %v", a, err)
	}
}

func TestKeyUsage(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedLedger(t, st, 7_000_000)
	admExec(t, st, `UPDATE api_keys SET key_hash = 'h-key', name = 'ci', quota_micros = 5000000,
		quota_used_micros = 1000000 WHERE id = $1`, f.key)
	now := time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)
	today, month := time.Date(2026, 5, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	rows := []usageRow{
		{reqID: "k-today", costOut: 100, out: 10, at: now.Add(-time.Hour)},
		{reqID: "k-month", costOut: 20, in: 5, at: today.Add(-time.Hour)},
		{reqID: "k-old", costIn: 3, in: 7, at: month.Add(-time.Hour)},
	}
	for _, r := range rows {
		r.user, r.key, r.group = f.user, f.key, f.group
		insertUsage(t, st, r)
	}
	insertUsage(t, st, usageRow{reqID: "other-key", user: f.user, key: f.key + 1000, group: f.group, costIn: 1_000_000, at: now})
	// The records were written outside settlement: count them into the totals.
	if err := st.RebuildKeyTotals(ctx); err != nil {
		t.Fatal(err)
	}

	got, err := st.KeyUsage(ctx, "h-key", now, today, month)
	if err != nil {
		t.Fatal(err)
	}
	quota := int64(5_000_000)
	want := KeyUsage{
		KeyID: f.key, KeyName: "ci", UserID: f.user, GroupID: f.group, BillingMode: "balance",
		BalanceMicros: 7_000_000, // the Reserved amounts are Redis's (adminapi adds them)
		QuotaMicros:   &quota, QuotaUsedMicros: 1_000_000,
		Today: UsageTotals{Requests: 1, OutputTokens: 10, CostMicros: 100, OutputCostMicros: 100},
		Month: UsageTotals{Requests: 2, InputTokens: 5, OutputTokens: 10, CostMicros: 120, OutputCostMicros: 120},
		Total: UsageTotals{Requests: 3, InputTokens: 12, OutputTokens: 10, CostMicros: 123, InputCostMicros: 3,
			OutputCostMicros: 120},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("KeyUsage\n got %+v\nwant %+v", got, want)
	}

	// Subscription mode: the subscription active at now, with its stored windows.
	admExec(t, st, `UPDATE groups SET billing_mode = 'subscription', daily_limit_micros = 1000000 WHERE id = $1`, f.group)
	admExec(t, st, `INSERT INTO subscriptions (user_id, group_id, starts_at, expires_at) VALUES ($1, $2, $3, $4)`,
		f.user, f.group, now.Add(-60*24*time.Hour), now.Add(-24*time.Hour)) // expired
	sub := admSQL(t, st, `INSERT INTO subscriptions (user_id, group_id, starts_at, expires_at, daily_window_start,
		daily_used_micros) VALUES ($1, $2, $3, $4, $5, 400000) RETURNING id`,
		f.user, f.group, now.Add(-10*24*time.Hour), now.Add(20*24*time.Hour), today)
	got, err = st.KeyUsage(ctx, "h-key", now, today, month)
	if err != nil {
		t.Fatal(err)
	}
	if got.BillingMode != "subscription" || got.DailyLimitMicros == nil || *got.DailyLimitMicros != 1_000_000 ||
		got.WeeklyLimitMicros != nil || got.Subscription == nil || got.Subscription.ID != sub ||
		got.Subscription.DailyUsedMicros != 400_000 || got.Subscription.ReservedMicros != 0 ||
		got.Subscription.DailyWindowStart == nil || !got.Subscription.DailyWindowStart.Equal(today) {
		t.Errorf("subscription key usage = %+v, subscription %+v", got, got.Subscription)
	}

	for _, hash := range []string{"nope", ""} {
		if _, err := st.KeyUsage(ctx, hash, now, today, month); !errors.Is(err, ErrKeyUnknown) {
			t.Errorf("KeyUsage(%q) = %v, want ErrKeyUnknown", hash, err)
		}
	}
	admExec(t, st, `UPDATE api_keys SET status = 'disabled' WHERE id = $1`, f.key)
	if _, err := st.KeyUsage(ctx, "h-key", now, today, month); !errors.Is(err, ErrKeyUnknown) {
		t.Errorf("disabled key: %v, want ErrKeyUnknown", err)
	}
}
