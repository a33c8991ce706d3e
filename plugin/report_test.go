package plugin

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReporterBatchesAndRetriesUntilAcknowledged(t *testing.T) {
	t.Parallel()
	stub := newContractStub(t)
	stub.failReports = 2
	rp := newReporter(newControlClient(stub.URL(), testSecret), 256, 10000)
	rp.maxInFlight = 1 // one sender: the order of acceptance is then the order of enqueueing
	defer rp.close()
	const n = 300
	for i := 0; i < n; i++ {
		enqueue(rp, report{GrantID: "g", RequestID: "req_" + strconv.Itoa(i), Status: 200})
	}
	stub.waitReports(n)
	time.Sleep(100 * time.Millisecond)
	stub.mu.Lock()
	got := append([]report(nil), stub.reports...)
	posts := append([]int(nil), stub.posts...)
	stub.mu.Unlock()
	if len(got) != n {
		t.Fatalf("%d reports accepted, want exactly %d", len(got), n)
	}
	seen := make(map[string]bool)
	for _, r := range got {
		if seen[r.RequestID] {
			t.Fatalf("report %s accepted twice", r.RequestID)
		}
		seen[r.RequestID] = true
	}
	// Order is kept across failed attempts: the retried batch goes back to the head.
	if got[0].RequestID != "req_0" || got[n-1].RequestID != "req_"+strconv.Itoa(n-1) {
		t.Fatalf("order lost: first %s last %s", got[0].RequestID, got[n-1].RequestID)
	}
	if len(posts) < 4 { // 2 refused + at least 2 batches for 300 records
		t.Fatalf("posts = %v", posts)
	}
	for _, size := range posts {
		if size > 256 {
			t.Fatalf("batch of %d records, limit 256 (posts %v)", size, posts)
		}
	}
	if d := droppedCount(rp); d != 0 {
		t.Fatalf("dropped %d", d)
	}
}

func TestReporterSendsAtOnceAndBatchesWhatArrivesMeanwhile(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		batches []int
	)
	entered := make(chan struct{}, 8)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reports []report `json:"reports"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		batches = append(batches, len(body.Reports))
		first := len(batches) == 1
		mu.Unlock()
		entered <- struct{}{}
		if first {
			<-release // hold the first batch in flight
		}
		_, _ = w.Write([]byte(`{"accepted":` + strconv.Itoa(len(body.Reports)) + `}`))
	}))
	defer srv.Close()
	rp := newReporter(newControlClient(srv.URL, testSecret), 256, 100)
	rp.maxInFlight = 1
	defer rp.close()

	began := time.Now()
	enqueue(rp, report{RequestID: "first"})
	select {
	case <-entered:
	case <-time.After(2 * time.Second):
		t.Fatal("an idle reporter did not send at once")
	}
	if waited := time.Since(began); waited > time.Second {
		t.Fatalf("first report went out after %v", waited)
	}
	for i := 0; i < 5; i++ {
		enqueue(rp, report{RequestID: strconv.Itoa(i)})
	}
	close(release)
	select {
	case <-entered:
	case <-time.After(2 * time.Second):
		t.Fatal("the reports queued meanwhile were not sent")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 2 || batches[0] != 1 || batches[1] != 5 {
		t.Fatalf("batches = %v, want [1 5]: one at once, then what queued while it was in flight", batches)
	}
}

// A batch stuck in flight (a slow database write in controlsvc) must not hold back the next
// reports: their slots are released by their own batch.
func TestReporterSendsPastABatchInFlight(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen []string
	)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reports []report `json:"reports"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		held := false
		mu.Lock()
		for _, rep := range body.Reports {
			seen = append(seen, rep.RequestID)
			held = held || rep.RequestID == "stuck"
		}
		mu.Unlock()
		if held {
			<-release
		}
		_, _ = w.Write([]byte(`{"accepted":` + strconv.Itoa(len(body.Reports)) + `}`))
	}))
	defer srv.Close()
	rp := newReporter(newControlClient(srv.URL, testSecret), 256, 100)
	defer rp.close()
	defer close(release) // before close, which waits for the senders

	enqueue(rp, report{RequestID: "stuck"})
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 1 })
	for i := 0; i < 3; i++ {
		enqueue(rp, report{RequestID: "next" + strconv.Itoa(i)})
		// Each goes out while "stuck" is still in flight.
		want := i + 2
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == want })
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != "stuck" || seen[3] != "next2" {
		t.Fatalf("sent %v", seen)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 2s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReporterSpoolDropsOldest(t *testing.T) {
	t.Parallel()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	rp := newReporter(newControlClient(down.URL, testSecret), 256, 5)
	rp.maxInFlight = 0 // no sender ever free: every report stays spooled
	defer rp.close()
	for i := 0; i < 8; i++ {
		enqueue(rp, report{RequestID: strconv.Itoa(i)})
	}
	if d := droppedCount(rp); d != 3 {
		t.Fatalf("dropped %d, want 3", d)
	}
	rp.mu.Lock()
	var ids []string
	for _, q := range rp.queue {
		ids = append(ids, q.r.RequestID)
	}
	rp.mu.Unlock()
	if len(ids) != 5 || ids[0] != "3" || ids[4] != "7" {
		t.Fatalf("spool = %v, want the newest 5", ids)
	}
}

func TestReporterDropsBatchRefusedAs400(t *testing.T) {
	t.Parallel()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer bad.Close()
	rp := newReporter(newControlClient(bad.URL, testSecret), 256, 100)
	defer rp.close()
	enqueue(rp, report{RequestID: "a"})
	deadline := time.Now().Add(2 * time.Second)
	for droppedCount(rp) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("a batch refused with 400 must be dropped, not retried forever")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if pending(rp) != 0 {
		t.Fatal("queue not empty")
	}
}

func TestRenewerRenewsLiveLeasesInOneCall(t *testing.T) {
	t.Parallel()
	stub := newContractStub(t)
	rn := newRenewer(newControlClient(stub.URL(), testSecret), 20*time.Millisecond)
	defer rn.close()

	waitRenew := func(want []lease) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			stub.mu.Lock()
			var last []lease
			if n := len(stub.renews); n > 0 {
				last = stub.renews[n-1]
			}
			stub.mu.Unlock()
			sort.Slice(last, func(i, j int) bool { return last[i].GrantID < last[j].GrantID })
			if equalLeases(last, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("last renew = %+v, want %+v", last, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	register(rn, lease{GrantID: "g_1", UserID: 1, AccountID: 10}, time.Time{})
	register(rn, lease{GrantID: "g_2", UserID: 2, AccountID: 20}, time.Time{})
	waitRenew([]lease{{"g_1", 1, 10, 0}, {"g_2", 2, 20, 0}})

	register(rn, lease{GrantID: "g_1", UserID: 1, AccountID: 11}, time.Time{}) // re-admitted elsewhere
	unregister(rn, "g_2")
	waitRenew([]lease{{"g_1", 1, 11, 0}})

	unregister(rn, "g_1")
	time.Sleep(50 * time.Millisecond) // let an in-flight tick finish
	stub.mu.Lock()
	before := len(stub.renews)
	stub.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	stub.mu.Lock()
	after := len(stub.renews)
	stub.mu.Unlock()
	if after != before {
		t.Fatalf("%d renew calls with no live lease", after-before)
	}
}

func equalLeases(a, b []lease) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLiveRequestHoldsLeaseUntilCompletion(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	up := newTestUpstream(t)
	up.set("up-1", upstreamReply{status: 200, gate: gate, events: []string{"data: {}\n\n", "data: [DONE]\n\n"}})
	stub := newContractStub(t, stubAccount{id: 4, baseURL: up.srv.URL, apiKey: "up-1"})
	p := newTestPlugin(t, stub, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		do(p, "/v1/chat/completions", `{"model":"m","stream":true}`, nil)
	}()
	deadline := time.Now().Add(3 * time.Second)
	for {
		if l := snapshot(p.control.leases, time.Now()); len(l) == 1 && l[0] == (lease{GrantID: "g_1", UserID: 7, AccountID: 4}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leases = %+v during the request", snapshot(p.control.leases, time.Now()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	<-done
	if l := snapshot(p.control.leases, time.Now()); len(l) != 0 {
		t.Fatalf("leases after completion = %+v", l)
	}
	stub.waitReport()
}

// reportSink stands in for controlsvc's POST /internal/v1/reports: it answers every batch
// with the status of its mode and records the acknowledged ones.
type reportSink struct {
	mu      sync.Mutex
	status  int      // answer to every batch
	ids     []string // request ids of acknowledged batches, in order
	dropped int64    // sum of the dropped counts of acknowledged batches
	posts   int      // every batch received, acknowledged or not
}

func newReportSink(t *testing.T, status int) (*reportSink, *httptest.Server) {
	s := &reportSink{status: status}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *reportSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b reportBatch
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posts++
	if s.status != http.StatusOK {
		w.WriteHeader(s.status)
		return
	}
	for _, rep := range b.Reports {
		s.ids = append(s.ids, rep.RequestID)
	}
	s.dropped += b.Dropped
	_, _ = w.Write([]byte(`{"accepted":` + strconv.Itoa(len(b.Reports)) + `}`))
}

func (s *reportSink) setStatus(status int) {
	s.mu.Lock()
	s.status = status
	s.mu.Unlock()
}

func (s *reportSink) acknowledged() ([]string, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...), s.dropped
}

// A full spool keeps the newest reports, counts what it dropped, and the count reaches
// controlsvc exactly once, in an acknowledged batch, although two batches were in flight.
func TestReporterSpoolKeepsNewestAndReportsDropsOnce(t *testing.T) {
	t.Parallel()
	sink, srv := newReportSink(t, http.StatusServiceUnavailable)
	rp := newReporter(newControlClient(srv.URL, testSecret), 4, 5)
	var logged []string
	var logMu sync.Mutex
	rp.logf = func(line string) { logMu.Lock(); logged = append(logged, line); logMu.Unlock() }
	defer rp.close()
	const n = 12
	for i := 0; i < n; i++ {
		enqueue(rp, report{RequestID: "r" + strconv.Itoa(i)})
	}
	// Once every batch in flight has come back refused, exactly the newest 5 are left.
	waitFor(t, func() bool { return droppedCount(rp) == n-5 })
	sink.setStatus(http.StatusOK)
	waitFor(t, func() bool { ids, _ := sink.acknowledged(); return len(ids) == 5 })
	time.Sleep(50 * time.Millisecond) // nothing more may come
	ids, dropped := sink.acknowledged()
	sort.Strings(ids)
	if want := []string{"r10", "r11", "r7", "r8", "r9"}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("acknowledged %v, want the newest five %v", ids, want)
	}
	if dropped != n-5 {
		t.Fatalf("controlsvc was told of %d drops, want %d", dropped, n-5)
	}
	if d := droppedCount(rp); d != n-5 {
		t.Fatalf("droppedCount = %d after the spool drained, want %d", d, n-5)
	}
	rp.mu.Lock()
	unsent := rp.drops.unsent
	rp.mu.Unlock()
	if unsent != 0 {
		t.Fatalf("%d drops still unsent after an acknowledged batch", unsent)
	}
	waitFor(t, func() bool { logMu.Lock(); defer logMu.Unlock(); return len(logged) > 0 })
	logMu.Lock()
	first := logged[0]
	logMu.Unlock()
	if !strings.Contains(first, "poolgate: dropped completion reports") || !strings.Contains(first, "spool of 5 full") {
		t.Fatalf("log line %q", first)
	}
}

// A batch refused with 400 is dropped and counted; its count and the count it carried go
// with the next acknowledged batch.
func TestReporterReportsRefusedBatchAsDropped(t *testing.T) {
	t.Parallel()
	sink, srv := newReportSink(t, http.StatusBadRequest)
	rp := newReporter(newControlClient(srv.URL, testSecret), 256, 100)
	rp.logf = func(string) {}
	defer rp.close()
	enqueue(rp, report{RequestID: "bad1"})
	waitFor(t, func() bool { return droppedCount(rp) == 1 })
	sink.setStatus(http.StatusOK)
	enqueue(rp, report{RequestID: "good"})
	waitFor(t, func() bool { ids, _ := sink.acknowledged(); return len(ids) == 1 })
	ids, dropped := sink.acknowledged()
	if ids[0] != "good" || dropped != 1 {
		t.Fatalf("acknowledged %v with dropped %d, want [good] with 1", ids, dropped)
	}
}

// controlsvc killed and restarted: connections are refused for a second, then it answers on
// the same address. Every report spooled meanwhile arrives exactly once; none is dropped.
func TestReporterRetriesThroughAnOutage(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // down: connection refused
	rp := newReporter(newControlClient("http://"+addr, testSecret), 8, reportMaxSpool)
	var logs atomic.Int64
	rp.logf = func(string) { logs.Add(1) }
	defer rp.close()
	const n = 50
	for i := 0; i < n; i++ {
		enqueue(rp, report{RequestID: "o" + strconv.Itoa(i)})
	}
	time.Sleep(time.Second)
	sink := &reportSink{status: http.StatusOK}
	srv := httptest.NewUnstartedServer(sink)
	if srv.Listener, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv.Start()
	defer srv.Close()
	deadline := time.Now().Add(10 * time.Second) // the backoff is at most 5 s
	for {
		ids, _ := sink.acknowledged()
		if len(ids) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d reports acknowledged after the restart", len(ids), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	ids, dropped := sink.acknowledged()
	seen := make(map[string]bool)
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("report %s acknowledged twice", id)
		}
		seen[id] = true
	}
	if len(ids) != n || dropped != 0 || droppedCount(rp) != 0 || logs.Load() != 0 {
		t.Fatalf("acknowledged %d (want %d), dropped reported %d, counted %d, %d log lines",
			len(ids), n, dropped, droppedCount(rp), logs.Load())
	}
}

// The first drop is logged at once; drops within logDropsEvery of a line are summed into
// the next one.
func TestReporterLogsDropsRateLimited(t *testing.T) {
	t.Parallel()
	_, srv := newReportSink(t, http.StatusServiceUnavailable)
	rp := newReporter(newControlClient(srv.URL, testSecret), 256, 2)
	rp.maxInFlight = 0 // nothing is sent: every report stays spooled
	rp.logDropsEvery = 300 * time.Millisecond
	type line struct {
		at   time.Time
		text string
	}
	var (
		mu    sync.Mutex
		lines []line
	)
	rp.logf = func(s string) { mu.Lock(); lines = append(lines, line{time.Now(), s}); mu.Unlock() }
	defer rp.close()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(lines) }

	for i := 0; i < 3; i++ { // one over the spool
		enqueue(rp, report{RequestID: strconv.Itoa(i)})
	}
	waitFor(t, func() bool { return count() == 1 })
	for i := 3; i < 7; i++ { // four more, within the interval
		enqueue(rp, report{RequestID: strconv.Itoa(i)})
	}
	waitFor(t, func() bool { return count() == 2 })
	time.Sleep(400 * time.Millisecond) // no drop since: no third line
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2: %v", len(lines), lines)
	}
	if !strings.Contains(lines[0].text, " 1 oldest") || !strings.Contains(lines[1].text, " 4 oldest") ||
		!strings.Contains(lines[1].text, "5 since start") {
		t.Fatalf("log lines %q / %q", lines[0].text, lines[1].text)
	}
	if gap := lines[1].at.Sub(lines[0].at); gap < 250*time.Millisecond {
		t.Fatalf("second line %v after the first, want about 300ms", gap)
	}
}

// Two batches in flight may fail in either order; the spool must stay in the order of
// enqueueing, so that trimming drops the oldest reports and not the newer batch.
func TestReporterGiveBackKeepsOrder(t *testing.T) {
	t.Parallel()
	for _, newerFirst := range []bool{false, true} {
		rp := newReporter(newControlClient("http://127.0.0.1:1", testSecret), 3, 5)
		rp.maxInFlight = 0 // the test takes the batches itself
		rp.logf = func(string) {}
		for i := 0; i < 6; i++ {
			enqueue(rp, report{RequestID: "r" + strconv.Itoa(i)})
		}
		rp.mu.Lock()
		older, newer := takeLocked(rp), takeLocked(rp) // r1-r3, r4-r5 (r0 was trimmed)
		rp.mu.Unlock()
		for i := 6; i < 9; i++ {
			enqueue(rp, report{RequestID: "r" + strconv.Itoa(i)})
		}
		rp.mu.Lock()
		if newerFirst {
			giveBackLocked(rp, newer)
			giveBackLocked(rp, older)
		} else {
			giveBackLocked(rp, older)
			giveBackLocked(rp, newer)
		}
		var ids []string
		for _, q := range rp.queue {
			ids = append(ids, q.r.RequestID)
		}
		dropped := rp.drops.total
		rp.mu.Unlock()
		rp.close()
		if got := strings.Join(ids, ","); got != "r4,r5,r6,r7,r8" || dropped != 4 {
			t.Errorf("newer first %v: spool %s, dropped %d; want r4,r5,r6,r7,r8 and 4", newerFirst, got, dropped)
		}
	}
}
