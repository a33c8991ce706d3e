package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/gatewaytest"
)

// nonStreamRequest sends one non-streaming /v1/responses request and reads its answer; a
// 200 is complete when its body is a completed response.
func nonStreamRequest(ctx context.Context, c *gatewaytest.Client, key string) answer {
	a, resp := sendResponses(ctx, c, key, fmt.Sprintf(`{"model":"gpt-4o-mini","input":"hello %d"}`, bodySeq.Add(1)), nil)
	if resp == nil {
		return a
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	a.end = time.Now()
	if err != nil {
		a.err = "reading the answer: " + err.Error()
	}
	if resp.StatusCode != http.StatusOK {
		a.body = string(b)
		return a
	}
	var r struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(b, &r) == nil && r.Status == "completed" {
		a.complete = true
	} else {
		a.body = string(b)
	}
	return a
}

// TestRollingRestartInvisible: both controlsvc instances of the kill stack are restarted
// gracefully, one after the other (SIGTERM, exit, start again), under a load of streaming
// and non-streaming requests, some of which wait for a user slot. Clients see nothing of
// it: every answer is a complete 200, each has exactly one usage record, the balances are
// exact, nothing stays reserved and no slot stays held.
func TestRollingRestartInvisible(t *testing.T) {
	c := newClient(t, killStack)
	// wide: slots to spare; narrow: 2 user slots for 4 workers, so admit calls wait in the
	// user queue while an instance stops (their waits end with shutting_down, answered by
	// the other instance).
	wide := c.NewTenant(gatewaytest.TenantSpec{Name: "roll-wide", UserConcurrency: 50, BalanceMicros: initialMicros, AccountConcurrency: []int{50, 50}})
	narrow := c.AddUser(wide, "roll-narrow", 2, initialMicros)
	for _, cred := range wide.Credentials {
		c.ProgramUpstream(cred, streamScript())
	}

	logFrom := [2]int{} // the instances' logs so far: earlier scenarios are not counted
	for i := range logFrom {
		logFrom[i] = len(killStack.Log(killStack.ControlsvcLog(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type worker struct {
		user   int
		key    string
		stream bool
	}
	var workers []worker
	for i := 0; i < 6; i++ {
		workers = append(workers, worker{0, wide.Key, true}, worker{0, wide.Key, false})
	}
	for i := 0; i < 2; i++ {
		workers = append(workers, worker{1, narrow.Key, true}, worker{1, narrow.Key, false})
	}
	stop := make(chan struct{})
	var (
		mu      sync.Mutex
		answers []answer
		wg      sync.WaitGroup
	)
	for _, w := range workers {
		wg.Add(1)
		go func(w worker) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var a answer
				if w.stream {
					a = streamRequest(ctx, c, w.key, nil)
				} else {
					a = nonStreamRequest(ctx, c, w.key)
				}
				a.user = w.user
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		}(w)
	}

	type phase struct {
		instance              int
		signalled, exited, up time.Time
	}
	var phases []phase
	scenario := func() error {
		time.Sleep(2 * time.Second)
		for i := 0; i < 2; i++ {
			p := phase{instance: i, signalled: time.Now()}
			if err := killStack.StopControlsvcAt(i); err != nil {
				return err
			}
			p.exited = time.Now()
			// While the instance is down the other one serves everything.
			time.Sleep(1500 * time.Millisecond)
			if err := killStack.StartControlsvcAt(ctx, i); err != nil {
				return err
			}
			p.up = time.Now()
			phases = append(phases, p)
			time.Sleep(2 * time.Second)
		}
		return nil
	}
	err := scenario()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("restarting: %v", err)
	}
	for _, p := range phases {
		t.Logf("instance %d: SIGTERM at %s, exited %v later, up again %v after that", p.instance,
			p.signalled.Format("15:04:05.000"), p.exited.Sub(p.signalled).Round(time.Millisecond), p.up.Sub(p.exited).Round(time.Millisecond))
	}

	o := classify(answers)
	if len(o.unavailable) > 0 || len(o.others) > 0 {
		var bad []string
		for _, a := range o.unavailable {
			bad = append(bad, fmt.Sprintf("503 %.200q (sent %s)", a.body, a.sent.Format("15:04:05.000")))
		}
		t.Fatalf("%d of %d answers were not a complete 200: %v %v", len(o.unavailable)+len(o.others), len(answers),
			gatewaytest.Head(bad), gatewaytest.Head(o.others))
	}
	// The load must straddle both restarts: answers in flight at each SIGTERM and answers
	// sent while each instance was down.
	for _, p := range phases {
		inFlight, whileDown := 0, 0
		for _, a := range answers {
			if a.sent.Before(p.signalled) && a.end.After(p.signalled) {
				inFlight++
			}
			if a.sent.After(p.exited) && a.sent.Before(p.up) {
				whileDown++
			}
		}
		t.Logf("instance %d: %d answers in flight at its SIGTERM, %d sent while it was down", p.instance, inFlight, whileDown)
		if inFlight == 0 || whileDown == 0 {
			t.Fatalf("the load did not straddle the restart of instance %d: %d in flight, %d while down", p.instance, inFlight, whileDown)
		}
	}
	// Waits ended by a SIGTERM are refused shutting_down by that instance and admitted by
	// the other one: the retry path is part of what this scenario proves.
	shutdownRefusals := 0
	for i := 0; i < 2; i++ {
		log := killStack.Log(killStack.ControlsvcLog(i))
		shutdownRefusals += strings.Count(log[logFrom[i]:], `"reason":"shutting_down"`)
	}
	t.Logf("%d admit calls refused shutting_down and retried on the other instance", shutdownRefusals)
	if shutdownRefusals == 0 {
		t.Errorf("no admit call was refused shutting_down: the narrow user's waits did not meet a SIGTERM")
	}
	t.Logf("%d answers: %d of the wide user, %d of the narrow one, all complete 200s", len(answers), len(o.okIDs[0]), len(o.okIDs[1]))
	checkUserLedger(t, c, wide, o.okIDs[0], initialMicros)
	checkUserLedger(t, c, narrow, o.okIDs[1], initialMicros)
	for _, r := range append(c.ListUsage(wide.KeyID), c.ListUsage(narrow.KeyID)...) {
		if r.CostMicros != streamCostMicros {
			t.Fatalf("record %s costs %d micros, want %d", r.RequestID, r.CostMicros, streamCostMicros)
		}
	}
	c.WaitNoSlots([]int64{wide.UserID, narrow.UserID}, wide.AccountIDs, killLeaseTTL+10*time.Second)
	for _, tn := range []gatewaytest.Tenant{wide, narrow} {
		if _, reserved := c.Balance(tn.UserID); reserved != 0 {
			t.Errorf("user %d: %d micros still reserved after the run", tn.UserID, reserved)
		}
	}
}
