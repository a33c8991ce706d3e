package yaegi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// spoolProbe is added to a private copy of the plugin: it hands the package's reporter to
// the test as plain functions, so the spool policy runs interpreted exactly as in Traefik,
// with bounds small enough to fill.
const spoolProbe = `package plugin

import "sync"

// SpoolProbe is test scaffolding written by tests/yaegi/spool_test.go; not plugin code.
func SpoolProbe(url, secret string, maxBatch, maxSpool int) (func(id string), func() int64, func() []string, func()) {
	rp := newReporter(newControlClient(url, secret), maxBatch, maxSpool)
	var mu sync.Mutex
	var lines []string
	rp.logf = func(line string) {
		mu.Lock()
		lines = append(lines, line)
		mu.Unlock()
	}
	add := func(id string) { enqueue(rp, report{RequestID: id, Status: 200}) }
	dropped := func() int64 { return droppedCount(rp) }
	logged := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
	stop := func() { rp.close() }
	return add, dropped, logged, stop
}
`

type probe struct {
	enqueue func(string)
	dropped func() int64
	logged  func() []string
	stop    func()
}

// loadSpoolProbe interprets a copy of the plugin with the probe file added and returns a
// constructor of probed reporters.
func loadSpoolProbe(t *testing.T) func(url string, maxBatch, maxSpool int) probe {
	t.Helper()
	vs, err := interpretWithProbe(t.TempDir(), "zz_spoolprobe.go", spoolProbe, "SpoolProbe")
	if err != nil {
		t.Fatal(err)
	}
	fn := vs[0]
	return func(url string, maxBatch, maxSpool int) probe {
		out := fn.Call([]reflect.Value{reflect.ValueOf(url), reflect.ValueOf(pluginSecret),
			reflect.ValueOf(maxBatch), reflect.ValueOf(maxSpool)})
		p := probe{
			enqueue: out[0].Interface().(func(string)),
			dropped: out[1].Interface().(func() int64),
			logged:  out[2].Interface().(func() []string),
			stop:    out[3].Interface().(func()),
		}
		t.Cleanup(p.stop)
		return p
	}
}

// sink is controlsvc's reports endpoint: it answers with its current status and records
// what it acknowledged.
type sink struct {
	mu      sync.Mutex
	status  int
	ids     []string
	dropped int64
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Reports []struct {
			RequestID string `json:"request_id"`
		} `json:"reports"`
		Dropped int64 `json:"dropped"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status != http.StatusOK {
		w.WriteHeader(s.status)
		return
	}
	for _, rep := range b.Reports {
		s.ids = append(s.ids, rep.RequestID)
	}
	s.dropped += b.Dropped
	fmt.Fprintf(w, `{"accepted":%d}`, len(b.Reports))
}

func (s *sink) set(status int) { s.mu.Lock(); s.status = status; s.mu.Unlock() }

func (s *sink) got() ([]string, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...), s.dropped
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The spool policy, interpreted: while controlsvc refuses, a full spool keeps the newest
// reports and drops the oldest; the drops are logged and reach controlsvc exactly once,
// with the first acknowledged batch, although two batches were in flight.
func TestSpoolKeepsNewestUnderYaegi(t *testing.T) {
	newProbe := loadSpoolProbe(t)
	s := &sink{status: http.StatusOK}
	srv := httptest.NewServer(s)
	defer srv.Close()

	// Warm-up, one report at a time: Yaegi fills its type caches on first use without a
	// lock (see warmUp in stack_test.go), which -race would blame on the plugin.
	warm := newProbe(srv.URL, 4, 5)
	warm.enqueue("warm")
	eventually(t, "warm-up report acknowledged", func() bool { ids, _ := s.got(); return len(ids) == 1 })
	s.set(http.StatusServiceUnavailable)
	warm.enqueue("warm-retry")
	time.Sleep(150 * time.Millisecond)
	s.set(http.StatusOK)
	eventually(t, "warm-up retry acknowledged", func() bool { ids, _ := s.got(); return len(ids) == 2 })
	warm.stop()

	s2 := &sink{status: http.StatusServiceUnavailable}
	srv2 := httptest.NewServer(s2)
	defer srv2.Close()
	p := newProbe(srv2.URL, 4, 5)
	const n = 12
	for i := 0; i < n; i++ {
		p.enqueue(fmt.Sprintf("r%02d", i))
	}
	eventually(t, "the spool trimmed to the newest 5", func() bool { return p.dropped() == n-5 })
	s2.set(http.StatusOK)
	eventually(t, "the spool drained", func() bool { ids, _ := s2.got(); return len(ids) == 5 })
	time.Sleep(100 * time.Millisecond)
	ids, dropped := s2.got()
	sort.Strings(ids)
	if got, want := strings.Join(ids, ","), "r07,r08,r09,r10,r11"; got != want {
		t.Errorf("acknowledged %s, want the newest five %s", got, want)
	}
	if dropped != n-5 {
		t.Errorf("controlsvc was told of %d drops, want %d", dropped, n-5)
	}
	lines := p.logged()
	if len(lines) == 0 || !strings.Contains(lines[0], "dropped completion reports") {
		t.Errorf("log lines %q, want one about the dropped reports", lines)
	}
}
