package gateway

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
)

// counts reads the service's counters.
type counts struct {
	dropped, written, duplicate, invalid, granted, refused, errors int64
}

func (e *env) counts() counts {
	m := e.svc.metrics
	return counts{m.reportsDropped.Value(), m.recordsWritten.Value(), m.recordsDuplicate.Value(),
		m.reportsInvalid.Value(), m.admitGranted.Value(), m.admitRefused.Value(), m.admitError.Value()}
}

func (e *env) sendBatch(t *testing.T, dropped string, reps ...report) httpResult {
	t.Helper()
	body := map[string]any{"reports": reps}
	if dropped != "" {
		body["dropped"] = json.RawMessage(dropped)
	}
	return e.post(t, "/internal/v1/reports", testSecret, body)
}

// The counters behind GET /metrics: admissions by result, and per report batch the records
// written, the duplicates, the invalid reports and the gateway's dropped count, which is
// counted only with an acknowledged batch and read leniently.
func TestReportAndAdmissionCounters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedBatchFixture(t)
	a := e.grantReport(t, f, 0, "")
	b := e.grantReport(t, f, 1, "")
	if got := e.counts(); got.granted != 2 || got.refused != 0 || got.errors != 0 {
		t.Fatalf("after two grants: %+v", got)
	}
	// Each grant is timed (real PostgreSQL and Redis round trips: well above 0 µs).
	grantedMicros := e.svc.metrics.admitGrantedMicros.Value()
	if grantedMicros < 2 {
		t.Fatalf("%d µs counted for two grants", grantedMicros)
	}
	if res := e.admit(t, admission.Request{APIKey: "sk-pg-unknown", Model: "gpt-4o"}); res.status != http.StatusUnauthorized {
		t.Fatalf("unknown key: %d %s", res.status, res.body)
	}
	if got := e.counts(); got.granted != 2 || got.refused != 1 || got.errors != 0 {
		t.Fatalf("after a refusal: %+v", got)
	}
	if got := e.svc.metrics.admitGrantedMicros.Value(); got != grantedMicros {
		t.Fatalf("a refusal added %d µs to the granted calls' time", got-grantedMicros)
	}
	e.exec(t, `ALTER TABLE api_keys RENAME TO api_keys_away`)
	res := e.admit(t, admission.Request{APIKey: "sk-pg-another-unknown", Model: "gpt-4o"})
	e.exec(t, `ALTER TABLE api_keys_away RENAME TO api_keys`)
	if res.status != http.StatusInternalServerError || res.reject != "" {
		t.Fatalf("admit with the database failing: %d %q %s, want 500 without reject", res.status, res.reject, res.body)
	}
	if got := e.counts(); got.granted != 2 || got.refused != 1 || got.errors != 1 {
		t.Fatalf("after an error: %+v", got)
	}

	invalid := b
	invalid.RequestID = ""
	steps := []struct {
		name     string
		dropped  string
		reps     []report
		breakDB  bool // the write fails: 500, nothing counted
		status   int
		want     counts
		accepted int
	}{
		{name: "a write that fails counts nothing", dropped: "3", reps: []report{a}, breakDB: true,
			status: http.StatusInternalServerError, want: counts{granted: 2, refused: 1, errors: 1}},
		{name: "its retry counts the record and the drops", dropped: "3", reps: []report{a, invalid},
			status: http.StatusOK, accepted: 1, want: counts{dropped: 3, written: 1, invalid: 1, granted: 2, refused: 1, errors: 1}},
		{name: "duplicates in and across batches", reps: []report{a, b, b},
			status: http.StatusOK, accepted: 3, want: counts{dropped: 3, written: 2, duplicate: 2, invalid: 1, granted: 2, refused: 1, errors: 1}},
		{name: "a dropped count that is no count is ignored, the batch stored", dropped: `"many"`, reps: []report{a},
			status: http.StatusOK, accepted: 1, want: counts{dropped: 3, written: 2, duplicate: 3, invalid: 1, granted: 2, refused: 1, errors: 1}},
		{name: "a negative dropped count is ignored", dropped: "-4", reps: []report{b},
			status: http.StatusOK, accepted: 1, want: counts{dropped: 3, written: 2, duplicate: 4, invalid: 1, granted: 2, refused: 1, errors: 1}},
		{name: "a batch of only drops", dropped: "2",
			status: http.StatusOK, accepted: 0, want: counts{dropped: 5, written: 2, duplicate: 4, invalid: 1, granted: 2, refused: 1, errors: 1}},
	}
	for _, st := range steps {
		if st.breakDB {
			e.exec(t, `ALTER TABLE usage_records RENAME TO usage_records_away`)
		}
		res := e.sendBatch(t, st.dropped, st.reps...)
		if st.breakDB {
			e.exec(t, `ALTER TABLE usage_records_away RENAME TO usage_records`)
		}
		if res.status != st.status {
			t.Fatalf("%s: status %d %s, want %d", st.name, res.status, res.body, st.status)
		}
		if st.status == http.StatusOK {
			wantAccepted(t, res, st.accepted)
		}
		if got := e.counts(); got != st.want {
			t.Fatalf("%s: counters %+v, want %+v", st.name, got, st.want)
		}
	}
}
