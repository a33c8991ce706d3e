// Package restart is the "nothing lost" test (docs/billing.md, "Nothing lost"): controlsvc
// is killed (SIGKILL) and restarted in the middle of a load run through the real Traefik
// with the plugin, and the ledger must afterwards hold exactly one usage record per
// successful request, with the balance consistent to the micro-dollar. It runs on a stack
// of its own because it needs a short slot lease TTL and kills the control service, which
// the shared e2e stack must not see.
package restart

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/gatewaytest"
	"github.com/poolgate/poolgate/internal/stack"
)

const (
	totalRequests = 1000
	concurrency   = 20
	killAfter     = 300                     // completed requests before the kill
	downFor       = 1500 * time.Millisecond // between the kill and the restart
	// A client that got a 503 waits before its next request, as a client backing off
	// would, so the run goes on after the restart rather than spending itself on 503s.
	backoffOn503 = 250 * time.Millisecond

	// Every response reports the same usage; gpt-4o-mini costs 0.15 and 0.60 USD per
	// million input and output tokens: 1000 × 0.15 + 500 × 0.60 = 450 micro-dollars.
	inputTokens, outputTokens = 1000, 500
	costMicros                = 450
	initialMicros             = 10_000_000 // 10 USD

	// Short leases: the slots of grants whose answer was lost in the crash (controlsvc
	// granted, then died before the plugin read the grant) expire quickly. Likewise the
	// reservations of such grants, released by the sweeper once older than their TTL.
	leaseTTL       = 5 * time.Second
	reservationTTL = 10 * time.Second
)

// outcome is what the load run saw.
type outcome struct {
	mu           sync.Mutex
	okIDs        []string // X-Poolgate-Request-Id of every 200
	unavailable  int      // 503s
	others       []string // anything else, to report
	okAfterStart int      // 200s that began after the restart completed
}

func TestKillAndRestartControlsvcLosesNothing(t *testing.T) {
	s := startStack(t)
	c := &client{&gatewaytest.Client{T: t, S: s, HTTP: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 2 * concurrency, MaxConnsPerHost: 4 * concurrency},
	}}}
	credential := "sk-restart-upstream"
	c.ProgramUpstream(credential, obj{"text": "ok", "usage": obj{"input_tokens": inputTokens, "output_tokens": outputTokens}})
	user := c.MustAdmin("POST", "/users", obj{"name": "restart-user", "concurrency": 50, "balance_usd": initialMicros / 1e6})
	group := c.MustAdmin("POST", "/groups", obj{"name": "restart-group", "platform": "openai"})
	account := c.MustAdmin("POST", "/accounts", obj{"name": "restart-account", "platform": "openai",
		"base_url": s.FakeURL, "credential": obj{"api_key": credential}, "concurrency": 50,
		"group_ids": []int64{gatewaytest.ID(group)}})
	keyObj := c.MustAdmin("POST", "/api-keys", obj{"user_id": gatewaytest.ID(user), "group_id": gatewaytest.ID(group), "name": "restart"})
	key, _ := keyObj["key"].(string)

	out := c.load(key)
	t.Logf("load run: %d × 200, %d × 503 (%d of the 200s began after the restart)",
		len(out.okIDs), out.unavailable, out.okAfterStart)
	if len(out.others) > 0 {
		t.Fatalf("%d requests got neither 200 nor 503 (controlsvc down): %v", len(out.others), gatewaytest.Head(out.others))
	}
	if len(out.okIDs)+out.unavailable != totalRequests {
		t.Fatalf("%d × 200 + %d × 503 != %d requests", len(out.okIDs), out.unavailable, totalRequests)
	}
	if out.unavailable == 0 || out.okAfterStart == 0 {
		t.Fatalf("the run did not straddle the outage: %d × 503, %d × 200 after the restart", out.unavailable, out.okAfterStart)
	}

	keyID := gatewaytest.ID(keyObj)
	records := c.DrainedUsage(keyID, len(out.okIDs), 45*time.Second)
	spent := gatewaytest.CheckLedger(t, records, out.okIDs)
	for _, r := range records {
		if r.CostMicros != costMicros {
			t.Fatalf("record %s costs %d micros, want %d", r.RequestID, r.CostMicros, costMicros)
		}
	}
	c.waitBalance(gatewaytest.ID(user), initialMicros-spent)
	c.WaitNoSlots([]int64{gatewaytest.ID(user)}, []int64{gatewaytest.ID(account)}, leaseTTL+10*time.Second)
	c.checkMetrics()
	if log := s.Log("traefik"); strings.Contains(log, "dropped completion reports") {
		t.Errorf("the plugin dropped reports:\n%s", s.LogTail("traefik"))
	}
}

// load sends totalRequests non-streaming requests through Traefik, concurrency at a time,
// and kills controlsvc after killAfter of them completed, restarting it downFor later.
func (c *client) load(key string) *outcome {
	out := &outcome{}
	var (
		next, done atomic.Int64
		restarted  atomic.Bool
		killOnce   sync.Once
		outage     = make(chan error, 1)
	)
	crash := func() {
		if err := c.S.KillControlsvc(); err != nil {
			outage <- err
			return
		}
		time.Sleep(downFor)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := c.S.RestartControlsvc(ctx)
		restarted.Store(true)
		outage <- err
	}
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= totalRequests {
				after := restarted.Load()
				status, reqID, body := c.request(key)
				out.mu.Lock()
				switch {
				case status == http.StatusOK && reqID != "":
					out.okIDs = append(out.okIDs, reqID)
					if after {
						out.okAfterStart++
					}
				case status == http.StatusServiceUnavailable:
					out.unavailable++
				default:
					out.others = append(out.others, fmt.Sprintf("%d %s %s", status, reqID, body))
				}
				out.mu.Unlock()
				if done.Add(1) >= killAfter {
					killOnce.Do(func() { go crash() })
				}
				if status == http.StatusServiceUnavailable {
					time.Sleep(backoffOn503)
				}
			}
		}()
	}
	wg.Wait()
	if err := <-outage; err != nil {
		c.T.Fatalf("kill and restart of controlsvc: %v", err)
	}
	return out
}

// waitBalance waits for the reservations of the run to be gone (settled by the reports,
// or, for a grant whose answer the crash lost, released by the sweeper) and checks the
// balance to the micro-dollar.
func (c *client) waitBalance(userID int64, want int64) {
	c.T.Helper()
	// The sweeper runs every minute and releases reservations older than reservationTTL.
	start := time.Now()
	deadline := start.Add(reservationTTL + 75*time.Second)
	for first := true; ; first = false {
		balance, reserved := c.Balance(userID)
		if balance != want {
			c.T.Fatalf("balance %d micros, want %d = %d - %d micros of usage records", balance, want, int64(initialMicros), int64(initialMicros)-want)
		}
		if first {
			c.T.Logf("after the drain: balance %d micros, %d micros reserved", balance, reserved)
		}
		if reserved == 0 {
			if !first {
				c.T.Logf("reservations released %v after the drain", time.Since(start).Round(time.Second))
			}
			return
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("%d micros still reserved", reserved)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkMetrics reads controlsvc's own /metrics (after the restart, so the counters cover
// the second run only) and checks that Traefik does not expose it.
func (c *client) checkMetrics() {
	c.T.Helper()
	m := c.Metrics(c.S.MetricsURL + "/metrics")
	if m["poolgate_reports_dropped_total"] != 0 {
		c.T.Errorf("poolgate_reports_dropped_total = %d, want 0", m["poolgate_reports_dropped_total"])
	}
	for _, name := range []string{"poolgate_report_records_written_total", `poolgate_admissions_total{result="granted"}`} {
		if m[name] <= 0 {
			c.T.Errorf("%s = %d, want > 0 after the restart's requests", name, m[name])
		}
	}
	for _, name := range []string{"poolgate_report_records_duplicate_total", `poolgate_admissions_total{result="refused"}`} {
		if _, ok := m[name]; !ok {
			c.T.Errorf("/metrics lacks %s", name)
		}
	}
	resp, err := c.HTTP.Get(c.S.GatewayURL + "/metrics")
	if err != nil {
		c.T.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		c.T.Errorf("GET /metrics through Traefik = %d, want 404: controlsvc's metrics are internal", resp.StatusCode)
	}
}

func startStack(t *testing.T) *stack.Stack {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := stack.TestOptions(root, "")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "poolgate-restart-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts.Dir = dir
	opts.ControlsvcEnv = []string{
		"POOLGATE_LEASE_TTL=" + leaseTTL.String(),
		"POOLGATE_RESERVATION_TTL=" + reservationTTL.String(),
	}
	s, err := stack.Start(ctx, opts)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting the stack: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"traefik", "controlsvc"} {
				t.Log(s.LogTail(name))
			}
		}
		s.Stop()
		os.RemoveAll(dir)
	})
	return s
}
