package yaegi

import (
	"encoding/json"
	"testing"

	"github.com/poolgate/poolgate/plugin/wire"
)

// wireProbe is added to a private copy of the plugin core: it hands the test the core's use
// of plugin/wire, another interpreted package — its error-type table through the core's
// error body, and its report shapes through the core's aliases and encoder — so that the
// interpreted results can be compared with the native ones.
const wireProbe = `package plugin

import (
	"github.com/poolgate/poolgate/plugin/jsonsse"
	"github.com/poolgate/poolgate/plugin/wire"
)

// WireErrorProbe is test scaffolding written by tests/yaegi/wire_test.go; not plugin code.
func WireErrorProbe(status int, typ string) string {
	return string(errorBody(true, wire.AnthropicErrorType(status, typ), "m"))
}

// WireReportProbe is test scaffolding written by tests/yaegi/wire_test.go; not plugin code.
func WireReportProbe() string {
	g := &grant{GrantID: "g1", AccountID: 7}
	f := &failedAttempt{AccountID: 7, Status: 529, ErrorClass: "upstream_status", Body: []byte("x")}
	b, err := jsonsse.Encode(reportBatch{Dropped: 2, Reports: []report{{GrantID: g.GrantID, AccountID: g.AccountID,
		UsageFormat: usageAnthropic, Warnings: []string{"w"},
		Attempts: []attemptReport{{AccountID: f.AccountID, Status: f.Status, ErrorClass: f.ErrorClass, HedgeLost: true}}}}})
	if err != nil {
		return err.Error()
	}
	a, err := jsonsse.Encode(admitRequest{RequestID: "r", Failed: f, MaxWaitMs: 5})
	if err != nil {
		return err.Error()
	}
	return string(b) + "\n" + string(a)
}
`

// Interpreted, the plugin core uses plugin/wire as compiled code does: the same Anthropic
// error types, and the same JSON from the wire types behind the core's aliases (a plugin-only
// json:"-" field left out).
func TestWireUnderYaegi(t *testing.T) {
	vs, err := interpretWithProbe(t.TempDir(), "zz_wireprobe.go", wireProbe, "WireErrorProbe", "WireReportProbe")
	if err != nil {
		t.Fatal(err)
	}
	errorProbe, ok1 := vs[0].Interface().(func(int, string) string)
	reportProbe, ok2 := vs[1].Interface().(func() string)
	if !ok1 || !ok2 {
		t.Fatalf("probe types %s, %s", vs[0].Type(), vs[1].Type())
	}
	tests := []struct {
		name   string
		status int
		typ    string
	}{
		{"own type", 503, wire.TypeRateLimit},
		{"upstream_error at 502", 502, wire.TypeUpstream},
		{"504", 504, wire.TypeUpstream},
		{"other 4xx", 422, ""},
		{"529", 529, ""},
		{"in-stream", 200, "server_error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, _ := json.Marshal(wire.AnthropicError{Type: "error",
				Error: wire.ErrorDetail{Type: wire.AnthropicErrorType(tc.status, tc.typ), Message: "m"}})
			if got := errorProbe(tc.status, tc.typ); got != string(want) {
				t.Errorf("interpreted %s, native %s", got, want)
			}
		})
	}
	f := &wire.FailedAttempt{AccountID: 7, Status: 529, ErrorClass: "upstream_status", Body: []byte("x")}
	b, _ := json.Marshal(wire.ReportBatch{Dropped: 2, Reports: []wire.Report{{GrantID: "g1", AccountID: 7,
		UsageFormat: wire.UsageAnthropic, Warnings: []string{"w"},
		Attempts: []wire.Attempt{{AccountID: 7, Status: 529, ErrorClass: "upstream_status", HedgeLost: true}}}}})
	a, _ := json.Marshal(wire.AdmitRequest{RequestID: "r", Failed: f, MaxWaitMs: 5})
	if got, want := reportProbe(), string(b)+"\n"+string(a); got != want {
		t.Errorf("interpreted\n%s\nnative\n%s", got, want)
	}
}
