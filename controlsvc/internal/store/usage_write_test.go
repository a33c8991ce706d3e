package store

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// ledgerFixture is a balance-mode user with a key in a group, and two accounts.
type ledgerFixture struct {
	user, group, key, acctA, acctB int64
}

func seedLedger(t testing.TB, st *Store, balanceMicros int64) ledgerFixture {
	t.Helper()
	var f ledgerFixture
	f.user = admSQL(t, st, `INSERT INTO users (name, balance_micros) VALUES ('u', $1) RETURNING id`, balanceMicros)
	f.group = admSQL(t, st, `INSERT INTO groups (name, platform) VALUES ('g-' || $1::bigint::text, 'openai') RETURNING id`, f.user)
	f.key = admSQL(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix)
		VALUES ($1, $2, 'hash-' || $1::bigint::text || '-' || $2::bigint::text, 'sk-pg-') RETURNING id`, f.user, f.group)
	f.acctA = admSQL(t, st, `INSERT INTO accounts (name, platform, base_url) VALUES ('a', 'openai', 'http://a') RETURNING id`)
	f.acctB = admSQL(t, st, `INSERT INTO accounts (name, platform, base_url) VALUES ('b', 'openai', 'http://b') RETURNING id`)
	return f
}

// failoverWrite is a request that failed over from acctA (429, no usage) to acctB (200).
func (f ledgerFixture) failoverWrite(requestID string) UsageWrite {
	return UsageWrite{
		RequestID: requestID, GrantID: "g_" + requestID, UserID: f.user, APIKeyID: f.key, GroupID: f.group,
		AccountID: f.acctB, Path: "/v1/responses", Model: "gpt-4o", UpstreamModel: "gpt-4o-2024-08-06",
		Stream: true, Status: 200,
		InputTokens: 10, OutputTokens: 20, CacheReadTokens: 3, CacheCreationTokens: 4, ReasoningTokens: 6,
		Priced: true, CostMicros: 1500, InputCostMicros: 100, OutputCostMicros: 1200, CacheReadCostMicros: 50,
		CacheWriteCostMicros: 150, RateMicros: 1_500_000,
		AdmissionMs: 3, UpstreamMs: 850, FirstTokenMs: 120, DurationMs: 900,
		Attempts: []AttemptWrite{
			{AccountID: f.acctA, Status: 429, ErrorClass: "upstream_status", LatencyMs: 4},
			{AccountID: f.acctB, Status: 200, InputTokens: 10, OutputTokens: 20, CacheReadTokens: 3,
				CacheCreationTokens: 4, ReasoningTokens: 6, CostMicros: 1500, LatencyMs: 840, FirstTokenMs: 110},
		},
	}
}

func queryInt(t *testing.T, st *Store, sql string, args ...any) int64 {
	t.Helper()
	var v int64
	if err := st.Pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestWriteUsageStoresRecordAndAttemptsOnce(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedLedger(t, st, 1_000_000)
	u := f.failoverWrite("req_1")
	for i, want := range []bool{true, false, false} {
		inserted, err := st.WriteUsage(ctx, u)
		if err != nil || inserted != want {
			t.Fatalf("write %d: WriteUsage = %v, %v; want %v", i, inserted, err, want)
		}
	}
	got, err := st.GetUsage(ctx, "req_1")
	if err != nil {
		t.Fatal(err)
	}
	want := UsageRecord{
		ID: got.ID, RequestID: "req_1", UserID: f.user, APIKeyID: f.key, GroupID: f.group, AccountID: f.acctB,
		Path: "/v1/responses", Model: "gpt-4o", UpstreamModel: "gpt-4o-2024-08-06", Stream: true, Status: 200,
		InputTokens: 10, OutputTokens: 20, CacheReadTokens: 3, CacheCreationTokens: 4, ReasoningTokens: 6,
		Priced: true, CostMicros: 1500, InputCostMicros: 100, OutputCostMicros: 1200, CacheReadCostMicros: 50,
		CacheWriteCostMicros: 150, RateMicros: 1_500_000, BillingMode: "balance",
		UsageSource: UsageUpstream, // "" is the upstream's
		AdmissionMs: 3, UpstreamMs: 850, FirstTokenMs: 120, DurationMs: 900, Attempts: 2, CreatedAt: got.CreatedAt,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("record\n got %+v\nwant %+v", got, want)
	}
	attempts, err := st.UsageAttempts(ctx, "req_1")
	if err != nil {
		t.Fatal(err)
	}
	wantAttempts := []UsageAttempt{
		{Attempt: 1, AccountID: f.acctA, Status: 429, ErrorClass: "upstream_status", LatencyMs: 4, UsageSource: UsageUpstream},
		{Attempt: 2, AccountID: f.acctB, Status: 200, InputTokens: 10, OutputTokens: 20, CacheReadTokens: 3,
			CacheCreationTokens: 4, ReasoningTokens: 6, CostMicros: 1500, LatencyMs: 840, FirstTokenMs: 110,
			UsageSource: UsageUpstream},
	}
	for i := range attempts {
		attempts[i].CreatedAt = wantAttempts[i].CreatedAt
	}
	if !reflect.DeepEqual(attempts, wantAttempts) {
		t.Errorf("attempts\n got %+v\nwant %+v", attempts, wantAttempts)
	}
	// Charged once: the user for the answering attempt, each account for its attempts' usage.
	if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, f.user); b != 1_000_000-1500 {
		t.Errorf("balance %d, want %d", b, 1_000_000-1500)
	}
	for acct, want := range map[int64]int64{f.acctA: 0, f.acctB: 1500} {
		if c := queryInt(t, st, `SELECT usage_cost_micros FROM accounts WHERE id = $1`, acct); c != want {
			t.Errorf("account %d usage cost %d, want %d", acct, c, want)
		}
	}
}

func TestWriteUsageWithoutAccountOrCost(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedLedger(t, st, 500)
	inserted, err := st.WriteUsage(ctx, UsageWrite{RequestID: "req_free", UserID: f.user, APIKeyID: f.key,
		GroupID: f.group, Status: 499, ErrorClass: "client_gone", RateMicros: 1_000_000})
	if err != nil || !inserted {
		t.Fatalf("WriteUsage = %v, %v", inserted, err)
	}
	var account *int64
	var priced bool
	if err := st.Pool.QueryRow(ctx, `SELECT account_id, priced FROM usage_records WHERE request_id = 'req_free'`).Scan(
		&account, &priced); err != nil {
		t.Fatal(err)
	}
	if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, f.user); b != 500 || account != nil || priced {
		t.Fatalf("balance %d account %v priced %v, want 500, NULL, false", b, account, priced)
	}
	if n := queryInt(t, st, `SELECT count(*) FROM usage_attempts WHERE request_id = 'req_free'`); n != 0 {
		t.Fatalf("%d attempts stored for a request without attempts", n)
	}
}

func TestWriteUsageBatch(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f1 := seedLedger(t, st, 100000)
	f2 := seedLedger(t, st, 100000)
	// Each record has one attempt on account A of its fixture, costing what the user pays.
	rec := func(id string, f ledgerFixture, cost int64) UsageWrite {
		return UsageWrite{RequestID: id, UserID: f.user, APIKeyID: f.key, GroupID: f.group, AccountID: f.acctA,
			Status: 200, Priced: true, CostMicros: cost, OutputCostMicros: cost, RateMicros: 1_000_000,
			Attempts: []AttemptWrite{{AccountID: f.acctA, Status: 200, OutputTokens: 1, CostMicros: cost}}}
	}
	tests := []struct {
		name         string
		give         []UsageWrite
		wantInserted []string
		wantBalances [2]int64 // after this case
	}{
		{
			name:         "new records of two users, one repeated within the batch",
			give:         []UsageWrite{rec("r1", f1, 10), rec("r2", f2, 20), rec("r1", f1, 10), rec("r3", f1, 5), rec("free", f2, 0)},
			wantInserted: []string{"free", "r1", "r2", "r3"},
			wantBalances: [2]int64{100000 - 15, 100000 - 20},
		},
		{
			name:         "a repeated batch stores and charges nothing",
			give:         []UsageWrite{rec("r2", f2, 20), rec("r1", f1, 10)},
			wantBalances: [2]int64{100000 - 15, 100000 - 20},
		},
		{
			name:         "old and new records mixed: only the new one is charged",
			give:         []UsageWrite{rec("r3", f1, 5), rec("r4", f2, 7)},
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
		got, _, err := st.WriteUsageBatch(ctx, tt.give)
		if err != nil {
			t.Fatalf("%s: WriteUsageBatch: %v", tt.name, err)
		}
		want := make(map[string]bool)
		for _, id := range tt.wantInserted {
			want[id] = true
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: inserted %v, want %v", tt.name, got, want)
		}
		for i, f := range []ledgerFixture{f1, f2} {
			if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, f.user); b != tt.wantBalances[i] {
				t.Fatalf("%s: user %d balance %d, want %d", tt.name, i, b, tt.wantBalances[i])
			}
			// Every account accumulates exactly what its user was charged (one attempt each).
			spent := 100000 - tt.wantBalances[i]
			if c := queryInt(t, st, `SELECT usage_cost_micros FROM accounts WHERE id = $1`, f.acctA); c != spent {
				t.Fatalf("%s: account of user %d usage cost %d, want %d", tt.name, i, c, spent)
			}
		}
	}
	if n := queryInt(t, st, `SELECT count(*) FROM usage_records`); n != 5 {
		t.Fatalf("%d usage records, want 5", n)
	}
	if n := queryInt(t, st, `SELECT count(*) FROM usage_attempts`); n != 5 {
		t.Fatalf("%d attempt rows, want 5", n)
	}
}

// Concurrent replays of the same batches (a plugin retrying a batch whose first delivery is
// still being written) store and charge each record once.
func TestWriteUsageConcurrentReplays(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedLedger(t, st, 10_000_000)
	const n = 40
	batch := make([]UsageWrite, n)
	for i := range batch {
		batch[i] = f.failoverWrite(fmt.Sprintf("req_%02d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	stored := make(chan int, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer sends the batch in another order: rotated, every other one reversed.
			mine := make([]UsageWrite, n)
			for i := range batch {
				j := (i + 5*w) % n
				if w%2 == 1 {
					j = n - 1 - j
				}
				mine[j] = batch[i]
			}
			got, _, err := st.WriteUsageBatch(ctx, mine)
			if err != nil {
				errs <- err
				return
			}
			stored <- len(got)
		}()
	}
	wg.Wait()
	close(errs)
	close(stored)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for k := range stored {
		total += k
	}
	if total != n {
		t.Fatalf("writers stored %d records in all, want %d", total, n)
	}
	if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, f.user); b != 10_000_000-n*1500 {
		t.Errorf("balance %d, want %d", b, 10_000_000-n*1500)
	}
	if c := queryInt(t, st, `SELECT usage_cost_micros FROM accounts WHERE id = $1`, f.acctB); c != n*1500 {
		t.Errorf("account usage cost %d, want %d", c, n*1500)
	}
	if k := queryInt(t, st, `SELECT count(*) FROM usage_attempts`); k != 2*n {
		t.Errorf("%d attempt rows, want %d", k, 2*n)
	}
}

func TestWriteUsageCountsEveryAttemptWithUsage(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedLedger(t, st, 1_000_000)
	// The first attempt produced usage before it failed (a first-token deadline after the
	// prompt was read): its account accumulates it, the user pays only the answering one.
	u := f.failoverWrite("req_both")
	u.Attempts[0] = AttemptWrite{AccountID: f.acctA, ErrorClass: "first_token_timeout", InputTokens: 10, CostMicros: 25}
	u.Attempts = append(u.Attempts, AttemptWrite{AccountID: f.acctA, Status: 200, OutputTokens: 1, CostMicros: 3})
	if _, err := st.WriteUsage(ctx, u); err != nil {
		t.Fatal(err)
	}
	if c := queryInt(t, st, `SELECT usage_cost_micros FROM accounts WHERE id = $1`, f.acctA); c != 28 {
		t.Errorf("account A usage cost %d, want 25 + 3", c)
	}
	if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, f.user); b != 1_000_000-1500 {
		t.Errorf("balance %d, want %d", b, 1_000_000-1500)
	}
	if n := queryInt(t, st, `SELECT attempts FROM usage_records WHERE request_id = 'req_both'`); n != 3 {
		t.Errorf("attempts %d, want 3", n)
	}
}

func TestGroupTerms(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	user := admSQL(t, st, `INSERT INTO users (name) VALUES ('u') RETURNING id`)
	other := admSQL(t, st, `INSERT INTO users (name) VALUES ('o') RETURNING id`)
	tests := []struct {
		rate string
		want int64
	}{
		{"1", 1_000_000}, {"1.5", 1_500_000}, {"0", 0}, {"0.000001", 1}, {"999999.999999", 999_999_999_999},
	}
	var pairs []UserGroup
	want := make(map[UserGroup]GroupTerms)
	for _, tt := range tests {
		g := admSQL(t, st, `INSERT INTO groups (name, platform, rate_multiplier) VALUES ('rate-' || $1::text, 'openai', $1::numeric) RETURNING id`, tt.rate)
		p := UserGroup{UserID: user, GroupID: g}
		pairs = append(pairs, p)
		want[p] = GroupTerms{RateMicros: tt.want, DefaultMaxOutputTokens: DefaultMaxOutputTokens}
	}
	// A user's own rate overrides the group's, for that user only.
	admExec(t, st, `INSERT INTO user_group_rates (user_id, group_id, rate_multiplier) VALUES ($1, $2, 0.25)`, user, pairs[1].GroupID)
	want[pairs[1]] = GroupTerms{RateMicros: 250_000, DefaultMaxOutputTokens: DefaultMaxOutputTokens}
	// The output limit and the output cap are the group's.
	admExec(t, st, `UPDATE groups SET default_max_output_tokens = 77, cap_output_tokens = true WHERE id = $1`, pairs[2].GroupID)
	want[pairs[2]] = GroupTerms{RateMicros: 0, DefaultMaxOutputTokens: 77, CapOutputTokens: true}
	o := UserGroup{UserID: other, GroupID: pairs[1].GroupID}
	pairs = append(pairs, o, UserGroup{UserID: user, GroupID: 999_999})
	want[o] = GroupTerms{RateMicros: 1_500_000, DefaultMaxOutputTokens: DefaultMaxOutputTokens}
	got, err := st.GroupTerms(ctx, pairs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GroupTerms = %v, want %v (unknown group left out)", got, want)
	}
	if got, err := st.GroupTerms(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("GroupTerms(nil) = %v, %v", got, err)
	}
}

// Each inserted record is settled in the batch's transaction and shows how: the billing
// mode, the subscription charged and the amount its hold held.
func TestWriteUsageRecordsSettlements(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	bal := seedLedger(t, st, 1_000_000)
	subs := seedLedger(t, st, 1_000_000)
	admExec(t, st, `UPDATE groups SET billing_mode = 'subscription', daily_limit_micros = 9000000 WHERE id = $1`, subs.group)
	sub := admSQL(t, st, `INSERT INTO subscriptions (user_id, group_id, starts_at, expires_at)
		VALUES ($1, $2, now() - interval '1 day', now() + interval '29 days') RETURNING id`, subs.user, subs.group)
	subWrite, balWrite := subs.failoverWrite("req_sub"), bal.failoverWrite("req_bal")
	subWrite.Held = &HeldRef{UserID: subs.user, KeyID: subs.key, GroupID: subs.group, BillingMode: BillingSubscription,
		SubscriptionID: sub, AmountMicros: 5000}
	balWrite.Held = &HeldRef{UserID: bal.user, KeyID: bal.key, GroupID: bal.group, BillingMode: BillingBalance, AmountMicros: 3000}

	batch := []UsageWrite{subWrite, balWrite, bal.failoverWrite("req_unreserved")}
	for range 2 { // the replay settles nothing again
		if _, _, err := st.WriteUsageBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		requestID string
		mode      string
		sub       *int64
		reserved  int64
	}{
		{"req_sub", "subscription", &sub, 5000},
		{"req_bal", "balance", nil, 3000},
		{"req_unreserved", "balance", nil, 0},
	} {
		got, err := st.GetUsage(ctx, tt.requestID)
		if err != nil {
			t.Fatal(err)
		}
		if got.BillingMode != tt.mode || !reflect.DeepEqual(got.SubscriptionID, tt.sub) || got.ReservedMicros != tt.reserved {
			t.Errorf("%s: billing %q subscription %v reserved %d, want %q %v %d", tt.requestID, got.BillingMode,
				got.SubscriptionID, got.ReservedMicros, tt.mode, tt.sub, tt.reserved)
		}
	}
	if used := queryInt(t, st, `SELECT daily_used_micros FROM subscriptions WHERE id = $1`, sub); used != 1500 {
		t.Errorf("subscription daily usage %d, want 1500", used)
	}
	if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, subs.user); b != 1_000_000 {
		t.Errorf("subscription user's balance %d, want untouched", b)
	}
	if b := queryInt(t, st, `SELECT balance_micros FROM users WHERE id = $1`, bal.user); b != 1_000_000-2*1500 {
		t.Errorf("balance %d, want %d", b, 1_000_000-2*1500)
	}
}
