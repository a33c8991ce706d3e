package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"

	"github.com/poolgate/poolgate/plugin/wire"
)

// BenchmarkAdmitAndReport measures one request's share of controlsvc work over real HTTP,
// PostgreSQL and Redis with warm caches: an admission, then its report in batches of 8.
// Profile with: go test -run '^$' -bench AdmitAndReport -cpuprofile cpu.out ./controlsvc/internal/gateway/
func BenchmarkAdmitAndReport(b *testing.B) { benchAdmit(b, false, 8) }

// BenchmarkAdmitAndReportSingly is BenchmarkAdmitAndReport with one report per batch, as a
// gateway at low concurrency sends them: the report batch's fixed cost (its two Redis round
// trips, its transaction) is each request's.
func BenchmarkAdmitAndReportSingly(b *testing.B) { benchAdmit(b, false, 1) }

// BenchmarkAdmit times the admit calls alone: the reports that free the slots run with the
// timer stopped.
func BenchmarkAdmit(b *testing.B) { benchAdmit(b, true, 8) }

func benchAdmit(b *testing.B, admitOnly bool, batch int) {
	e := newEnv(b)
	f := e.seedFixture(b, 64, "openai")
	e.seedAccount(b, f.group, accountSeed{concurrency: 64})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	post := func(path string, v any) []byte {
		body, _ := json.Marshal(v)
		req, _ := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(body))
		req.Header.Set(SecretHeader, testSecret)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %d %s", path, resp.StatusCode, out)
		}
		return out
	}
	var pending []report
	micros0, granted0 := e.svc.metrics.admitGrantedMicros.Value(), e.svc.metrics.admitGranted.Value()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var g wire.Grant
		out := post("/internal/v1/admit", admission.Request{RequestID: fmt.Sprintf("req_b%d", i), APIKey: f.key,
			Path: "/v1/responses", Model: "gpt-4o"})
		if err := json.Unmarshal(out, &g); err != nil {
			b.Fatal(err)
		}
		pending = append(pending, reportFor(g, 200, "responses", `{"input_tokens":12,"output_tokens":6}`))
		if len(pending) == batch {
			if admitOnly {
				b.StopTimer()
			}
			post("/internal/v1/reports", reportsRequest{Reports: pending})
			pending = pending[:0]
			if admitOnly {
				b.StartTimer()
			}
		}
	}
	if n := e.svc.metrics.admitGranted.Value() - granted0; n > 0 {
		// controlsvc's own time per grant, as its /metrics count it: the rest of ns/op is
		// the client and the HTTP hop.
		b.ReportMetric(float64(e.svc.metrics.admitGrantedMicros.Value()-micros0)/float64(n), "server-µs/grant")
	}
}
