package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"

	"github.com/poolgate/poolgate/plugin/wire"
)

// usageRow is the part of a usage record the tests check.
type usageRow struct {
	input, output, cacheRead, cacheCreation, reasoning, cost int64
	bucketCosts                                              [4]int64 // input, output, cache read, cache write
	rate                                                     int64
	priced                                                   bool
	attempts                                                 int
	status                                                   int
	accountID                                                *int64
	admissionMs, upstreamMs, firstTokenMs, durationMs        int64
}

func (e *env) usageRow(t *testing.T, requestID string) usageRow {
	t.Helper()
	var r usageRow
	err := e.st.Pool.QueryRow(context.Background(), `SELECT input_tokens, output_tokens, cache_read_tokens,
		cache_creation_tokens, reasoning_tokens, cost_micros, input_cost_micros, output_cost_micros,
		cache_read_cost_micros, cache_write_cost_micros, rate_micros, priced, attempts, status, account_id,
		admission_ms, upstream_ms, first_token_ms, duration_ms
		FROM usage_records WHERE request_id = $1`, requestID).Scan(
		&r.input, &r.output, &r.cacheRead, &r.cacheCreation, &r.reasoning, &r.cost, &r.bucketCosts[0],
		&r.bucketCosts[1], &r.bucketCosts[2], &r.bucketCosts[3], &r.rate, &r.priced, &r.attempts, &r.status,
		&r.accountID, &r.admissionMs, &r.upstreamMs, &r.firstTokenMs, &r.durationMs)
	if err != nil {
		t.Fatalf("reading usage record %s: %v", requestID, err)
	}
	return r
}

// attemptRow is one usage_attempts row as the tests check it.
type attemptRow struct {
	attempt                     int
	account                     int64
	status                      int
	errorClass                  string
	input, output, reasoning    int64
	cost, latency, firstTokenMs int64
}

func (e *env) attemptRows(t *testing.T, requestID string) []attemptRow {
	t.Helper()
	rows, err := e.st.Pool.Query(context.Background(), `SELECT attempt, COALESCE(account_id, 0), status, error_class,
		input_tokens, output_tokens, reasoning_tokens, cost_micros, latency_ms, first_token_ms
		FROM usage_attempts WHERE request_id = $1 ORDER BY attempt`, requestID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []attemptRow
	for rows.Next() {
		var a attemptRow
		if err := rows.Scan(&a.attempt, &a.account, &a.status, &a.errorClass, &a.input, &a.output, &a.reasoning,
			&a.cost, &a.latency, &a.firstTokenMs); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) accountCost(t *testing.T, account int64) int64 {
	t.Helper()
	return e.queryInt(t, `SELECT usage_cost_micros FROM accounts WHERE id = $1`, account)
}

func (e *env) balance(t *testing.T, user int64) int64 {
	t.Helper()
	return e.queryInt(t, `SELECT balance_micros FROM users WHERE id = $1`, user)
}

func (e *env) sendReports(t *testing.T, reps ...report) httpResult {
	t.Helper()
	return e.post(t, "/internal/v1/reports", testSecret, reportsRequest{Reports: reps})
}

func wantAccepted(t *testing.T, res httpResult, n int) {
	t.Helper()
	if res.status != http.StatusOK {
		t.Fatalf("reports = %d %s, want 200", res.status, res.body)
	}
	var rep reportsReply
	if err := json.Unmarshal(res.body, &rep); err != nil || rep.Accepted != n {
		t.Fatalf("reports reply %s, want accepted %d", res.body, n)
	}
}

// reportFor builds the final report of a grant.
func reportFor(g wire.Grant, status int, format, usageJSON string) report {
	return report{
		GrantID: g.GrantID, RequestID: g.RequestID, UserID: g.UserID, APIKeyID: g.APIKeyID, GroupID: g.GroupID,
		AccountID: g.AccountID, Path: "/v1/responses", Model: "gpt-4o", UpstreamModel: g.UpstreamModel,
		Status: status, UsageFormat: format, Usage: json.RawMessage(usageJSON), DurationMs: 900, FirstTokenMs: 120,
		Attempts: []attempt{{AccountID: g.AccountID, Status: status, DurationMs: 850}},
	}
}

func TestReportIsChargedOnceAndReleasesSlots(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.seedUser(t, 2, 10_000_000)
	g := e.seedGroup(t, "openai", "1.5")
	acc := e.seedAccount(t, g, accountSeed{})
	grant := e.mustGrant(t, admission.Request{RequestID: "req_once", APIKey: e.seedKey(t, u, g), Model: "gpt-4o"})
	rep := reportFor(grant, 200, "responses",
		`{"input_tokens":1000,"input_tokens_details":{"cached_tokens":200},"output_tokens":500}`)

	for i := range 3 { // the plugin retries until acknowledged: repeats must be harmless
		wantAccepted(t, e.sendReports(t, rep), 1)
		if n := e.queryInt(t, `SELECT count(*) FROM usage_records WHERE request_id = 'req_once'`); n != 1 {
			t.Fatalf("send %d: %d usage records, want 1", i, n)
		}
		// (800×2.5 + 200×1.25 + 500×10) × 1.5 = 10875 micro-dollars
		if b := e.balance(t, u); b != 10_000_000-10_875 {
			t.Fatalf("send %d: balance %d, want %d", i, b, 10_000_000-10_875)
		}
	}
	row := e.usageRow(t, "req_once")
	// input 800×2.5×1.5 = 3000, cache read 200×1.25×1.5 = 375, output 500×10×1.5 = 7500
	want := usageRow{input: 800, cacheRead: 200, output: 500, cost: 10_875, bucketCosts: [4]int64{3000, 7500, 375, 0},
		rate: 1_500_000, priced: true, attempts: 1, status: 200, accountID: row.accountID, firstTokenMs: 120, durationMs: 900}
	if row != want || row.accountID == nil || *row.accountID != acc {
		t.Fatalf("usage record %+v\nwant          %+v", row, want)
	}
	wantAttempts := []attemptRow{{attempt: 1, account: acc, status: 200, input: 800, output: 500, cost: 10_875, latency: 850}}
	if got := e.attemptRows(t, "req_once"); !reflect.DeepEqual(got, wantAttempts) {
		t.Fatalf("attempts %+v, want %+v", got, wantAttempts)
	}
	if c := e.accountCost(t, acc); c != 10_875 {
		t.Fatalf("account usage cost %d, want 10875 once", c)
	}
	if us, as := e.count(t, slots.KindUser, u), e.count(t, slots.KindAccount, acc); us != 0 || as != 0 {
		t.Fatalf("slots user=%d account=%d after the report, want 0 and 0", us, as)
	}
}

func TestReportUsageAndCost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name          string
		platform      string
		rate          string
		userRate      string // the user's own rate in the group; "" = none
		model         string
		upstreamModel string
		format        string
		usage         string
		want          usageRow
	}{
		{
			name: "chat completions with reasoning", platform: "openai", rate: "1", model: "gpt-4o-mini", format: "chat",
			usage: `{"prompt_tokens":2006,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1920},
				"completion_tokens_details":{"reasoning_tokens":120}}`,
			// 86×0.15 = 12.9 → 13, 1920×0.075 = 144, 300×0.6 = 180 (reasoning is inside output)
			want: usageRow{input: 86, cacheRead: 1920, output: 300, reasoning: 120, cost: 337,
				bucketCosts: [4]int64{13, 180, 144, 0}, rate: 1_000_000, priced: true},
		},
		{
			name: "responses with reasoning", platform: "openai", rate: "1", model: "gpt-4o", format: "responses",
			usage: `{"input_tokens":10,"output_tokens":100,"output_tokens_details":{"reasoning_tokens":64}}`,
			want: usageRow{input: 10, output: 100, reasoning: 64, cost: 1025, bucketCosts: [4]int64{25, 1000, 0, 0},
				rate: 1_000_000, priced: true},
		},
		{
			name: "anthropic with cache write, dated model", platform: "anthropic", rate: "1",
			model: "claude-sonnet-4-20250514", format: "anthropic",
			usage: `{"input_tokens":25,"cache_creation_input_tokens":1500,"cache_read_input_tokens":3000,"output_tokens":420}`,
			// 25×3 = 75, 420×15 = 6300, 3000×0.3 = 900, 1500×3.75 = 5625
			want: usageRow{input: 25, cacheRead: 3000, cacheCreation: 1500, output: 420, cost: 12_900,
				bucketCosts: [4]int64{75, 6300, 900, 5625}, rate: 1_000_000, priced: true},
		},
		{
			name: "priced by the upstream model", platform: "openai", rate: "2", model: "gpt-4o",
			upstreamModel: "gpt-4o-mini-2024-07-18", format: "responses",
			usage: `{"input_tokens":1000000,"output_tokens":0}`,
			want:  usageRow{input: 1_000_000, cost: 300_000, bucketCosts: [4]int64{300_000, 0, 0, 0}, rate: 2_000_000, priced: true},
		},
		{
			name: "the user's own rate overrides the group's", platform: "openai", rate: "2", userRate: "0.5",
			model: "gpt-4o", format: "responses", usage: `{"input_tokens":1000,"output_tokens":1000}`,
			want: usageRow{input: 1000, output: 1000, cost: 6250, bucketCosts: [4]int64{1250, 5000, 0, 0},
				rate: 500_000, priced: true},
		},
		{
			name: "unpriced model is recorded unpriced at cost 0", platform: "openai", rate: "1", model: "my-local-llm",
			format: "responses", usage: `{"input_tokens":1000,"output_tokens":1000}`,
			want: usageRow{input: 1000, output: 1000, rate: 1_000_000},
		},
		{
			// A 2xx answer is never free: without usage it is billed by estimate
			// (reports_estimate_test.go), here the minimum of one output token.
			name: "no usage on a 2xx answer", platform: "openai", rate: "1", model: "gpt-4o", format: "responses",
			usage: `null`,
			want:  usageRow{output: 1, cost: 10, bucketCosts: [4]int64{0, 10, 0, 0}, rate: 1_000_000, priced: true},
		},
		{
			name: "unreadable usage on a 2xx answer is billed by estimate", platform: "openai", rate: "1",
			model: "gpt-4o", format: "gemini", usage: `{"promptTokenCount":5}`,
			want: usageRow{output: 1, cost: 10, bucketCosts: [4]int64{0, 10, 0, 0}, rate: 1_000_000, priced: true},
		},
		{
			name: "rate zero", platform: "openai", rate: "0", model: "gpt-4o", format: "responses",
			usage: `{"input_tokens":1000,"output_tokens":1000}`,
			want:  usageRow{input: 1000, output: 1000, priced: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := e.seedUser(t, 2, 5_000_000)
			g := e.seedGroup(t, tt.platform, tt.rate)
			e.exec(t, `UPDATE groups SET allow_unpriced = true WHERE id = $1`, g) // this test is about reports
			if tt.userRate != "" {
				e.exec(t, `INSERT INTO user_group_rates (user_id, group_id, rate_multiplier) VALUES ($1, $2, $3::numeric)`,
					u, g, tt.userRate)
			}
			acc := e.seedAccount(t, g, accountSeed{platform: tt.platform})
			grant := e.mustGrant(t, admission.Request{APIKey: e.seedKey(t, u, g), Model: tt.model})
			rep := reportFor(grant, 200, tt.format, tt.usage)
			rep.Model, rep.UpstreamModel = tt.model, tt.upstreamModel
			rep.DurationMs, rep.FirstTokenMs = 0, 0
			wantAccepted(t, e.sendReports(t, rep), 1)
			got := e.usageRow(t, grant.RequestID)
			want := tt.want
			want.attempts, want.status, want.accountID = 1, 200, got.accountID
			if got != want {
				t.Fatalf("usage record %+v\nwant          %+v", got, want)
			}
			if sum := got.bucketCosts[0] + got.bucketCosts[1] + got.bucketCosts[2] + got.bucketCosts[3]; sum != got.cost {
				t.Fatalf("bucket costs %v do not sum to the cost %d", got.bucketCosts, got.cost)
			}
			if b := e.balance(t, u); b != 5_000_000-tt.want.cost {
				t.Fatalf("balance %d, want %d", b, 5_000_000-tt.want.cost)
			}
			if c := e.accountCost(t, acc); c != tt.want.cost {
				t.Fatalf("account usage cost %d, want %d", c, tt.want.cost)
			}
		})
	}
}

// A failover request: every attempt is in the ledger, the user pays for the answering one,
// and each account accumulates the usage of its own attempts; a replay changes nothing.
func TestReportLedgerOfFailover(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 2, "openai")
	a := e.seedAccount(t, f.group, accountSeed{priority: 1})
	b := e.seedAccount(t, f.group, accountSeed{priority: 2})
	grant := e.mustGrant(t, admission.Request{RequestID: "req_ledger", APIKey: f.key, Model: "gpt-4o"})
	rep := reportFor(grant, 200, "responses",
		`{"input_tokens":100,"output_tokens":100,"output_tokens_details":{"reasoning_tokens":30}}`)
	rep.AccountID = b
	rep.AdmissionMs, rep.UpstreamMs = 7, 880
	rep.Attempts = []attempt{
		{AccountID: a, Status: 429, ErrorClass: "upstream_status", DurationMs: 5, RetryAfter: "1"},
		{AccountID: b, Status: 200, DurationMs: 850, FirstTokenMs: 140},
	}
	for range 2 {
		wantAccepted(t, e.sendReports(t, rep), 1)
	}
	row := e.usageRow(t, "req_ledger")
	if row.cost != costOf100x100 || row.attempts != 2 || row.reasoning != 30 || row.admissionMs != 7 ||
		row.upstreamMs != 880 || row.firstTokenMs != 120 || row.durationMs != 900 {
		t.Fatalf("usage record %+v", row)
	}
	want := []attemptRow{
		{attempt: 1, account: a, status: 429, errorClass: "upstream_status", latency: 5},
		{attempt: 2, account: b, status: 200, input: 100, output: 100, reasoning: 30, cost: costOf100x100,
			latency: 850, firstTokenMs: 140},
	}
	if got := e.attemptRows(t, "req_ledger"); !reflect.DeepEqual(got, want) {
		t.Fatalf("attempts\n got %+v\nwant %+v", got, want)
	}
	if ca, cb := e.accountCost(t, a), e.accountCost(t, b); ca != 0 || cb != costOf100x100 {
		t.Fatalf("account costs %d and %d, want 0 and %d", ca, cb, costOf100x100)
	}
	if bal := e.balance(t, f.user); bal != 10_000_000-costOf100x100 {
		t.Fatalf("balance %d, want %d", bal, 10_000_000-costOf100x100)
	}

	// Earlier attempts that produced usage (their own usage object) are charged to their
	// account at list price × rate, by the model that account was sent, never to the user.
	grant2 := e.mustGrant(t, admission.Request{RequestID: "req_ledger2", APIKey: f.key, Model: "gpt-4o"})
	rep2 := reportFor(grant2, 200, "responses", `{"input_tokens":100,"output_tokens":100}`)
	rep2.Attempts = []attempt{
		{AccountID: a, ErrorClass: "first_token_timeout", DurationMs: 500, Usage: json.RawMessage(`{"input_tokens":100}`)},
		{AccountID: a, ErrorClass: "first_token_timeout", DurationMs: 500, Usage: json.RawMessage(`{"input_tokens":100}`),
			UpstreamModel: "gpt-4o-mini"},
		{AccountID: b, Status: 200, DurationMs: 300},
	}
	wantAccepted(t, e.sendReports(t, rep2), 1)
	// 100 × 2.5 (gpt-4o) + 100 × 0.15 (gpt-4o-mini)
	if ca, cb := e.accountCost(t, a), e.accountCost(t, b); ca != 265 || cb != 2*costOf100x100 {
		t.Fatalf("account costs %d and %d, want 265 and %d", ca, cb, 2*costOf100x100)
	}
	if bal := e.balance(t, f.user); bal != 10_000_000-2*costOf100x100 {
		t.Fatalf("balance %d, want %d", bal, 10_000_000-2*costOf100x100)
	}
	got := e.attemptRows(t, "req_ledger2")
	if len(got) != 3 || got[0].input != 100 || got[0].cost != 250 || got[1].cost != 15 || got[2].cost != costOf100x100 {
		t.Fatalf("attempts %+v", got)
	}
}

// After failover, the report frees every account the grant touched and marks the last one
// when it failed with a failover status.
func TestReportAfterFailover(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 1, "openai")
	a := e.seedAccount(t, f.group, accountSeed{priority: 1})
	b := e.seedAccount(t, f.group, accountSeed{priority: 2})
	first := e.mustGrant(t, admission.Request{RequestID: "req_fo", APIKey: f.key, Model: "gpt-4o"})
	// The plugin loses track of the failed account's release (e.g. re-admission timed out):
	// the report must still free it. Re-acquire it to simulate the leftover lease.
	second := e.mustGrant(t, admission.Request{RequestID: "req_fo", GrantID: first.GrantID, APIKey: f.key, Model: "gpt-4o",
		Exclude: []int64{a}, Failed: &health.Failure{AccountID: a, Status: 500}})
	if second.AccountID != b {
		t.Fatalf("failover chose %d, want %d", second.AccountID, b)
	}
	e.fillAccountWithGrant(t, a, first.GrantID)

	rep := reportFor(second, 429, "", `null`)
	rep.ErrorClass = "upstream_status"
	rep.Attempts = []attempt{
		{AccountID: a, Status: 500, ErrorClass: "upstream_status"},
		{AccountID: b, Status: 429, ErrorClass: "upstream_status", RetryAfter: "60"},
	}
	wantAccepted(t, e.sendReports(t, rep), 1)
	for _, id := range []int64{a, b} {
		if n := e.count(t, slots.KindAccount, id); n != 0 {
			t.Fatalf("account %d still holds %d slots", id, n)
		}
	}
	if n := e.count(t, slots.KindUser, f.user); n != 0 {
		t.Fatalf("user holds %d slots", n)
	}
	if n := e.queryInt(t, `SELECT count(*) FROM accounts WHERE id = $1
		AND rate_limited_until BETWEEN now() + interval '55 seconds' AND now() + interval '61 seconds'`, b); n != 1 {
		t.Fatal("last attempt's account not rate-limited for ~60 s")
	}
	if n := e.queryInt(t, `SELECT count(*) FROM accounts WHERE id = $1 AND rate_limited_until IS NULL
		AND overloaded_until IS NULL AND paused_until IS NULL`, a); n != 1 {
		t.Fatal("the 500 account was marked")
	}
	row := e.usageRow(t, "req_fo")
	if row.attempts != 2 || row.status != 429 || row.cost != 0 {
		t.Fatalf("usage record %+v", row)
	}
}

func (e *env) fillAccountWithGrant(t *testing.T, account int64, grant string) {
	t.Helper()
	e.holdLease(t, account, grant, 100)
}

func TestReportsBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.post(t, "/internal/v1/reports", testSecret, `{"reports": [`)
	if res.status != http.StatusBadRequest || res.reject != "" {
		t.Fatalf("broken JSON: %d %s, want 400", res.status, res.body)
	}
	var body wire.OpenAIError
	if err := json.Unmarshal(res.body, &body); err != nil || body.Error.Type != "invalid_request_error" {
		t.Fatalf("broken JSON body %s", res.body)
	}

	// A report without request_id cannot be stored idempotently: it is dropped (retrying
	// cannot fix it) but its slots are still released and valid neighbours are stored.
	f := e.seedFixture(t, 2, "openai")
	acc := e.seedAccount(t, f.group, accountSeed{})
	bad := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	good := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	badRep := reportFor(bad, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)
	badRep.RequestID = ""
	wantAccepted(t, e.sendReports(t, badRep, reportFor(good, 200, "responses", `null`)), 1)
	if us, as := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, acc); us != 0 || as != 0 {
		t.Fatalf("slots user=%d account=%d, want 0 and 0", us, as)
	}
	if n := e.queryInt(t, `SELECT count(*) FROM usage_records`); n != 1 {
		t.Fatalf("%d usage records, want 1", n)
	}
}

// The reply comes only after the write: a failed write is a 500 so the plugin retries, and
// the retry is stored once.
func TestReportsNotAcknowledgedWhenWriteFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 2, "openai")
	e.seedAccount(t, f.group, accountSeed{})
	grant := e.mustGrant(t, admission.Request{RequestID: "req_retry", APIKey: f.key, Model: "gpt-4o"})
	rep := reportFor(grant, 200, "responses", `{"input_tokens":100,"output_tokens":100}`)

	e.exec(t, `ALTER TABLE usage_records RENAME TO usage_records_away`)
	res := e.sendReports(t, rep)
	if res.status != http.StatusInternalServerError || res.reject != "" {
		t.Fatalf("write health.Failure answered %d %s, want 500", res.status, res.body)
	}
	if b := e.balance(t, f.user); b != 10_000_000 {
		t.Fatalf("balance %d after a failed write, want unchanged", b)
	}
	e.exec(t, `ALTER TABLE usage_records_away RENAME TO usage_records`)
	wantAccepted(t, e.sendReports(t, rep), 1)
	// 100×2.5 + 100×10 = 1250
	if b := e.balance(t, f.user); b != 10_000_000-1250 {
		t.Fatalf("balance %d, want %d", b, 10_000_000-1250)
	}
}
