package metrics

import (
	"io"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestExposition(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	dropped := r.Counter("poolgate_reports_dropped_total", "Reports dropped.\nBy gateways.")
	granted := r.Counter("poolgate_admissions_total", "Admit calls by result.", Label{"result", "granted"})
	refused := r.Counter("poolgate_admissions_total", "ignored: the first help wins", Label{"result", "refused"})
	odd := r.Counter("poolgate_odd_total", `Help with a \ backslash.`, Label{"v", "a\"b\\c\nd"})
	dropped.Add(5)
	dropped.Add(-3) // ignored: counters never go down
	granted.Inc()
	granted.Inc()
	if again := r.Counter("poolgate_admissions_total", "", Label{"result", "granted"}); again != granted {
		t.Fatal("the same series registered twice returned a new counter")
	}
	_ = refused
	odd.Inc()

	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	want := `# HELP poolgate_reports_dropped_total Reports dropped.\nBy gateways.
# TYPE poolgate_reports_dropped_total counter
poolgate_reports_dropped_total 5
# HELP poolgate_admissions_total Admit calls by result.
# TYPE poolgate_admissions_total counter
poolgate_admissions_total{result="granted"} 2
poolgate_admissions_total{result="refused"} 0
# HELP poolgate_odd_total Help with a \\ backslash.
# TYPE poolgate_odd_total counter
poolgate_odd_total{v="a\"b\\c\nd"} 1
`
	if string(body) != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", body, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != ContentType {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestCounterConcurrent(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := r.Counter("poolgate_x_total", "x")
			for j := 0; j < 1000; j++ {
				c.Inc()
			}
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
		}()
	}
	wg.Wait()
	if v := r.Counter("poolgate_x_total", "x").Value(); v != 8000 {
		t.Fatalf("count %d, want 8000", v)
	}
}
