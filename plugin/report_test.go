package plugin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
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
		rp.enqueue(report{GrantID: "g", RequestID: "req_" + strconv.Itoa(i), Status: 200})
	}
	got := stub.waitReports(n)
	time.Sleep(100 * time.Millisecond)
	stub.mu.Lock()
	got = append([]report(nil), stub.reports...)
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
	if d := rp.droppedCount(); d != 0 {
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
	rp.enqueue(report{RequestID: "first"})
	select {
	case <-entered:
	case <-time.After(2 * time.Second):
		t.Fatal("an idle reporter did not send at once")
	}
	if waited := time.Since(began); waited > time.Second {
		t.Fatalf("first report went out after %v", waited)
	}
	for i := 0; i < 5; i++ {
		rp.enqueue(report{RequestID: strconv.Itoa(i)})
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

	rp.enqueue(report{RequestID: "stuck"})
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 1 })
	for i := 0; i < 3; i++ {
		rp.enqueue(report{RequestID: "next" + strconv.Itoa(i)})
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
		rp.enqueue(report{RequestID: strconv.Itoa(i)})
	}
	if d := rp.droppedCount(); d != 3 {
		t.Fatalf("dropped %d, want 3", d)
	}
	rp.mu.Lock()
	var ids []string
	for _, r := range rp.queue {
		ids = append(ids, r.RequestID)
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
	rp.enqueue(report{RequestID: "a"})
	deadline := time.Now().Add(2 * time.Second)
	for rp.droppedCount() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("a batch refused with 400 must be dropped, not retried forever")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if rp.pending() != 0 {
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
	rn.register(lease{GrantID: "g_1", UserID: 1, AccountID: 10})
	rn.register(lease{GrantID: "g_2", UserID: 2, AccountID: 20})
	waitRenew([]lease{{"g_1", 1, 10}, {"g_2", 2, 20}})

	rn.register(lease{GrantID: "g_1", UserID: 1, AccountID: 11}) // re-admitted elsewhere
	rn.unregister("g_2")
	waitRenew([]lease{{"g_1", 1, 11}})

	rn.unregister("g_1")
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
		if l := p.control.leases.snapshot(); len(l) == 1 && l[0] == (lease{GrantID: "g_1", UserID: 7, AccountID: 4}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leases = %+v during the request", p.control.leases.snapshot())
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	<-done
	if l := p.control.leases.snapshot(); len(l) != 0 {
		t.Fatalf("leases after completion = %+v", l)
	}
	stub.waitReport()
}
