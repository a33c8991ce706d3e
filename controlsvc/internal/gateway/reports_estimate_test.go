package gateway

import (
	"encoding/json"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// sources reads the usage_source of a record and of its attempts, in order.
func (e *env) sources(t *testing.T, requestID string) (record string, attempts []string) {
	t.Helper()
	if err := e.st.Pool.QueryRow(t.Context(), `SELECT usage_source FROM usage_records WHERE request_id = $1`,
		requestID).Scan(&record); err != nil {
		t.Fatalf("reading usage_source of %s: %v", requestID, err)
	}
	rows, err := e.st.Pool.Query(t.Context(), `SELECT usage_source FROM usage_attempts WHERE request_id = $1 ORDER BY attempt`, requestID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		attempts = append(attempts, s)
	}
	return record, attempts
}

// A committed answer without complete usage is billed by estimate, end to end: admission
// reserves, the report is priced by the estimate rule (docs/billing.md, "Disconnects,
// drains and estimates"), the balance is charged the record's cost and the reservation is
// gone. Prices: gpt-4o 2.5 / 10, claude-sonnet-4 3 / 15 / cache read 0.3, per million tokens.
func TestReportEstimates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name          string
		platform      string // default openai
		model         string // default gpt-4o
		groupDefault  int64  // the group's default_max_output_tokens; 0 = 4096
		capOutput     bool
		status        int // default 499: the client left after the commit point
		errorClass    string
		format        string
		usage         string
		source        string
		inputBytes    int64
		maxOutput     int64
		outputBytes   int64
		wantSource    string
		wantIn        int64
		wantCacheRead int64
		wantOut       int64
		wantCost      int64
	}{
		{
			name: "input from input_bytes, output from bytes", usage: `null`, source: "estimate",
			inputBytes: 1001, outputBytes: 4001,
			// 501 × 2.5 = 1252.5 → 1253, 1001 × 10 = 10010
			wantSource: "estimate", wantIn: 501, wantOut: 1001, wantCost: 11_263,
		},
		{
			name: "input from the partial usage, not from input_bytes", platform: "anthropic",
			model: "claude-sonnet-4-20250514", format: "anthropic", source: "estimate",
			usage:      `{"input_tokens":25,"cache_read_input_tokens":3000,"output_tokens":1}`, // message_start
			inputBytes: 99_999, outputBytes: 400,
			// 25 × 3 = 75, 3000 × 0.3 = 900, 100 × 15 = 1500: the placeholder output 1 is not billed
			wantSource: "estimate", wantIn: 25, wantCacheRead: 3000, wantOut: 100, wantCost: 2475,
		},
		{
			name: "a larger reported output wins", usage: `{"input_tokens":10,"output_tokens":500}`,
			source: "estimate", inputBytes: 5000, outputBytes: 40,
			wantSource: "estimate", wantIn: 10, wantOut: 500, wantCost: 25 + 5000,
		},
		{
			name: "at least one output token", usage: `null`, source: "estimate",
			wantSource: "estimate", wantOut: 1, wantCost: 10,
		},
		{
			name: "capped at the request's max_output_tokens", usage: `null`, source: "estimate",
			inputBytes: 10, maxOutput: 50, outputBytes: 4000,
			wantSource: "estimate", wantIn: 5, wantOut: 50, wantCost: 13 + 500,
		},
		{
			name: "capped at the group's default", groupDefault: 64, usage: `null`, source: "estimate",
			outputBytes: 4000,
			wantSource:  "estimate", wantOut: 64, wantCost: 640,
		},
		{
			name: "cap_output_tokens group counts one input token per byte", capOutput: true, usage: `null`,
			source: "estimate", inputBytes: 1000, outputBytes: 8,
			wantSource: "estimate", wantIn: 1000, wantOut: 2, wantCost: 2500 + 20,
		},
		{
			name: "2xx without usage from an upstream report", status: 200, usage: `null`, source: "upstream",
			inputBytes: 2, outputBytes: 40,
			wantSource: "estimate", wantIn: 1, wantOut: 10, wantCost: 3 + 100,
		},
		{
			name: "2xx with an empty usage object from an old report", status: 200, usage: `{}`,
			inputBytes: 2, outputBytes: 40,
			wantSource: "estimate", wantIn: 1, wantOut: 10, wantCost: 3 + 100,
		},
		{
			name: "an unknown usage_source is billed by estimate", status: 200, usage: `null`, source: "estimat",
			inputBytes: 2, outputBytes: 4,
			wantSource: "estimate", wantIn: 1, wantOut: 1, wantCost: 3 + 10,
		},
		{
			name: "the upstream's usage is billed as reported", status: 200, source: "upstream",
			usage: `{"input_tokens":100,"output_tokens":7}`, inputBytes: 5000, outputBytes: 4000,
			wantSource: "upstream", wantIn: 100, wantOut: 7, wantCost: 250 + 70,
		},
		{
			name: "an old report without the new fields is billed from its usage", status: 200,
			usage:      `{"input_tokens":100,"output_tokens":7}`,
			wantSource: "upstream", wantIn: 100, wantOut: 7, wantCost: 250 + 70,
		},
		{
			name: "a 499 before the commit point is not billed", usage: `null`, inputBytes: 5000, outputBytes: 0,
			wantSource: "upstream",
		},
		{
			// Keep-alives sent the 200 while the request waited; every attempt then failed and
			// the client got an error event: nothing was committed, and the plugin says so.
			name: "keep-alives, then a health.Failure in the stream: not billed", status: 200, errorClass: "request_timeout",
			usage: `null`, source: "upstream", inputBytes: 5000, outputBytes: 0,
			wantSource: "upstream",
		},
		{
			name: "an old report's 2xx without usage is estimated, error class or not", status: 200,
			errorClass: "stream_cut", usage: `null`, inputBytes: 2, outputBytes: 40,
			wantSource: "estimate", wantIn: 1, wantOut: 10, wantCost: 3 + 100,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			platform, model, status, format := tt.platform, tt.model, tt.status, tt.format
			if platform == "" {
				platform, model = "openai", "gpt-4o"
			}
			if status == 0 {
				status = 499
			}
			if format == "" {
				format = "responses"
			}
			f := e.seedBillFixture(t, platform, 10_000_000)
			if tt.groupDefault > 0 || tt.capOutput {
				e.exec(t, `UPDATE groups SET default_max_output_tokens = COALESCE(NULLIF($2, 0), 4096),
					cap_output_tokens = $3 WHERE id = $1`, f.group, tt.groupDefault, tt.capOutput)
			}
			grant := e.mustGrant(t, admission.Request{APIKey: f.key, Model: model, InputBytes: tt.inputBytes,
				MaxOutputTokens: tt.maxOutput})
			if _, ok := e.hold(t, grant.UserID, grant.RequestID); !ok {
				t.Fatal("no hold after the grant")
			}
			before := e.svc.metrics.usageEstimated.Value()
			rep := reportFor(grant, status, format, tt.usage)
			rep.Model = model
			rep.ErrorClass = tt.errorClass
			rep.UsageSource, rep.InputBytes, rep.MaxOutputTokens, rep.OutputBytes = tt.source, tt.inputBytes,
				tt.maxOutput, tt.outputBytes
			wantAccepted(t, e.sendReports(t, rep), 1)

			row := e.usageRow(t, grant.RequestID)
			if row.input != tt.wantIn || row.cacheRead != tt.wantCacheRead || row.output != tt.wantOut ||
				row.cost != tt.wantCost || !row.priced {
				t.Fatalf("record input %d cache read %d output %d cost %d priced %v, want %d %d %d %d true",
					row.input, row.cacheRead, row.output, row.cost, row.priced, tt.wantIn, tt.wantCacheRead, tt.wantOut, tt.wantCost)
			}
			src, attempts := e.sources(t, grant.RequestID)
			if src != tt.wantSource || len(attempts) != 1 || attempts[0] != tt.wantSource {
				t.Fatalf("usage_source %q, attempts %v; want %q on both", src, attempts, tt.wantSource)
			}
			if tt.wantSource == store.UsageEstimate && row.cost <= 0 {
				t.Fatalf("an estimate cost %d, want > 0", row.cost)
			}
			if b := e.balance(t, f.user); b != 10_000_000-row.cost {
				t.Fatalf("balance %d, want %d (charged the record's cost)", b, 10_000_000-row.cost)
			}
			if c := e.accountCost(t, f.account); c != row.cost {
				t.Fatalf("account usage cost %d, want %d", c, row.cost)
			}
			if held := e.heldMicros(t, f); held != 0 {
				t.Fatalf("%d micros still reserved", held)
			}
			wantCounted := int64(0)
			if tt.wantSource == store.UsageEstimate {
				wantCounted = 1
			}
			if got := e.svc.metrics.usageEstimated.Value() - before; got != wantCounted {
				t.Fatalf("%s counted %d, want %d", metricUsageEstimated, got, wantCounted)
			}
		})
	}
}

// An earlier attempt's usage is the upstream's own; only the answering attempt carries the
// record's estimate.
func TestReportEstimateMarksTheAnsweringAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBillFixture(t, "openai", 10_000_000)
	grant := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", InputBytes: 40})
	rep := reportFor(grant, 200, "responses", `null`)
	rep.UsageSource, rep.InputBytes, rep.OutputBytes = "estimate", 40, 400
	rep.Attempts = []attempt{
		{AccountID: f.account, ErrorClass: "first_token_timeout", Usage: json.RawMessage(`{"input_tokens":20}`)},
		{AccountID: f.account, Status: 200},
	}
	wantAccepted(t, e.sendReports(t, rep), 1)
	src, attempts := e.sources(t, grant.RequestID)
	if src != "estimate" || len(attempts) != 2 || attempts[0] != "upstream" || attempts[1] != "estimate" {
		t.Fatalf("usage_source %q, attempts %v; want estimate, [upstream estimate]", src, attempts)
	}
	// The user pays the answering attempt's estimate (20 input, 100 output), the account both.
	if row := e.usageRow(t, grant.RequestID); row.input != 20 || row.output != 100 || row.cost != 50+1000 {
		t.Fatalf("record %+v", row)
	}
	if c := e.accountCost(t, f.account); c != 50+50+1000 {
		t.Fatalf("account usage cost %d, want %d", c, 50+50+1000)
	}
	if us := e.count(t, slots.KindUser, f.user); us != 0 {
		t.Fatalf("user holds %d slots", us)
	}
}
