package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

// usageRow is the part of a usage record the tests check.
type usageRow struct {
	input, output, cacheRead, cacheCreation, cost int64
	attempts                                      int
	status                                        int
	accountID                                     *int64
	details                                       string
}

func (e *env) usageRow(t *testing.T, requestID string) usageRow {
	t.Helper()
	var r usageRow
	err := e.st.Pool.QueryRow(context.Background(), `SELECT input_tokens, output_tokens, cache_read_tokens,
		cache_creation_tokens, cost_micros, attempts, status, account_id, attempt_details::text
		FROM usage_records WHERE request_id = $1`, requestID).Scan(
		&r.input, &r.output, &r.cacheRead, &r.cacheCreation, &r.cost, &r.attempts, &r.status, &r.accountID, &r.details)
	if err != nil {
		t.Fatalf("reading usage record %s: %v", requestID, err)
	}
	return r
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
func reportFor(g admitReply, status int, format, usageJSON string) report {
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
	grant := e.mustGrant(t, admitRequest{RequestID: "req_once", APIKey: e.seedKey(t, u, g), Model: "gpt-4o"})
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
	if row.input != 800 || row.cacheRead != 200 || row.output != 500 || row.cost != 10_875 ||
		row.attempts != 1 || row.status != 200 || row.accountID == nil || *row.accountID != acc {
		t.Fatalf("usage record %+v", row)
	}
	var details []attempt
	if err := json.Unmarshal([]byte(row.details), &details); err != nil || len(details) != 1 ||
		details[0].AccountID != acc || details[0].DurationMs != 850 {
		t.Fatalf("attempt_details %s", row.details)
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
		model         string
		upstreamModel string
		format        string
		usage         string
		want          usageRow
	}{
		{
			name: "chat completions", platform: "openai", rate: "1", model: "gpt-4o-mini", format: "chat",
			usage: `{"prompt_tokens":2006,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1920}}`,
			// 86×0.15 + 1920×0.075 + 300×0.6 = 12.9 + 144 + 180 = 336.9 → 337
			want: usageRow{input: 86, cacheRead: 1920, output: 300, cost: 337},
		},
		{
			name: "anthropic with cache write, dated model", platform: "anthropic", rate: "1",
			model: "claude-sonnet-4-20250514", format: "anthropic",
			usage: `{"input_tokens":25,"cache_creation_input_tokens":1500,"cache_read_input_tokens":3000,"output_tokens":420}`,
			want:  usageRow{input: 25, cacheRead: 3000, cacheCreation: 1500, output: 420, cost: 12_900},
		},
		{
			name: "priced by the upstream model", platform: "openai", rate: "2", model: "gpt-4o",
			upstreamModel: "gpt-4o-mini-2024-07-18", format: "responses",
			usage: `{"input_tokens":1000000,"output_tokens":0}`,
			want:  usageRow{input: 1_000_000, cost: 300_000},
		},
		{
			name: "unknown model costs nothing for now", platform: "openai", rate: "1", model: "my-local-llm",
			format: "responses", usage: `{"input_tokens":1000,"output_tokens":1000}`,
			want: usageRow{input: 1000, output: 1000, cost: 0},
		},
		{
			name: "no usage", platform: "openai", rate: "1", model: "gpt-4o", format: "responses", usage: `null`,
			want: usageRow{},
		},
		{
			name: "unreadable usage is recorded without tokens", platform: "openai", rate: "1", model: "gpt-4o",
			format: "gemini", usage: `{"promptTokenCount":5}`,
			want: usageRow{},
		},
		{
			name: "rate zero", platform: "openai", rate: "0", model: "gpt-4o", format: "responses",
			usage: `{"input_tokens":1000,"output_tokens":1000}`,
			want:  usageRow{input: 1000, output: 1000, cost: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := e.seedUser(t, 2, 5_000_000)
			g := e.seedGroup(t, tt.platform, tt.rate)
			e.seedAccount(t, g, accountSeed{platform: tt.platform})
			grant := e.mustGrant(t, admitRequest{APIKey: e.seedKey(t, u, g), Model: tt.model})
			rep := reportFor(grant, 200, tt.format, tt.usage)
			rep.Model, rep.UpstreamModel = tt.model, tt.upstreamModel
			wantAccepted(t, e.sendReports(t, rep), 1)
			got := e.usageRow(t, grant.RequestID)
			if got.input != tt.want.input || got.output != tt.want.output || got.cacheRead != tt.want.cacheRead ||
				got.cacheCreation != tt.want.cacheCreation || got.cost != tt.want.cost {
				t.Fatalf("usage record %+v, want tokens/cost of %+v", got, tt.want)
			}
			if b := e.balance(t, u); b != 5_000_000-tt.want.cost {
				t.Fatalf("balance %d, want %d", b, 5_000_000-tt.want.cost)
			}
		})
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
	first := e.mustGrant(t, admitRequest{RequestID: "req_fo", APIKey: f.key, Model: "gpt-4o"})
	// The plugin loses track of the failed account's release (e.g. re-admission timed out):
	// the report must still free it. Re-acquire it to simulate the leftover lease.
	second := e.mustGrant(t, admitRequest{RequestID: "req_fo", GrantID: first.GrantID, APIKey: f.key, Model: "gpt-4o",
		Exclude: []int64{a}, Failed: &failure{AccountID: a, Status: 500}})
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
	if ok, err := e.slots.Acquire(context.Background(), slots.KindAccount, account, grant, 100); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
}

func TestReportsBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.post(t, "/internal/v1/reports", testSecret, `{"reports": [`)
	if res.status != http.StatusBadRequest || res.reject != "" {
		t.Fatalf("broken JSON: %d %s, want 400", res.status, res.body)
	}
	var body openAIError
	if err := json.Unmarshal(res.body, &body); err != nil || body.Error.Type != "invalid_request_error" {
		t.Fatalf("broken JSON body %s", res.body)
	}

	// A report without request_id cannot be stored idempotently: it is dropped (retrying
	// cannot fix it) but its slots are still released and valid neighbours are stored.
	f := e.seedFixture(t, 2, "openai")
	acc := e.seedAccount(t, f.group, accountSeed{})
	bad := e.mustGrant(t, admitRequest{APIKey: f.key, Model: "gpt-4o"})
	good := e.mustGrant(t, admitRequest{APIKey: f.key, Model: "gpt-4o"})
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
	grant := e.mustGrant(t, admitRequest{RequestID: "req_retry", APIKey: f.key, Model: "gpt-4o"})
	rep := reportFor(grant, 200, "responses", `{"input_tokens":100,"output_tokens":100}`)

	e.exec(t, `ALTER TABLE usage_records RENAME TO usage_records_away`)
	res := e.sendReports(t, rep)
	if res.status != http.StatusInternalServerError || res.reject != "" {
		t.Fatalf("write failure answered %d %s, want 500", res.status, res.body)
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
