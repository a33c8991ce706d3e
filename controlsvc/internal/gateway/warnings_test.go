package gateway

import (
	"strings"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/ledger"
)

// TestReportWarningsAreStored: a converted request's warnings land on its record, bounded
// in number and length and without NULs; a report without any leaves NULL.
func TestReportWarningsAreStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	e.seedAccount(t, f.group, accountSeed{})
	cases := []struct {
		name string
		sent []string
		want []string
	}{
		{"none", nil, nil},
		{"two", []string{`tools[1]: tool type "local_shell" has no Claude equivalent; left out`, "b\x00c"},
			[]string{`tools[1]: tool type "local_shell" has no Claude equivalent; left out`, "bc"}},
		{"bounded", []string{strings.Repeat("x", 500), "2", "3", "4", "5", "6", "7", "8", "9", "10"},
			[]string{strings.Repeat("x", ledger.MaxReportWarningLen), "2", "3", "4", "5", "6", "7", "8"}},
	}
	for _, tc := range cases {
		g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
		rep := reportFor(g, 200, "responses", `{"input_tokens":10,"output_tokens":1}`)
		rep.Warnings = tc.sent
		wantAccepted(t, e.sendReports(t, rep), 1)
		var got []string
		if err := e.st.Pool.QueryRow(t.Context(), `SELECT warnings FROM usage_records WHERE request_id = $1`,
			g.RequestID).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || (tc.want == nil) != (got == nil) {
			t.Errorf("%s: warnings %q, want %q", tc.name, got, tc.want)
		}
	}
}
