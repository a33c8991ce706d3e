package fault

import (
	"context"
	"testing"
	"time"

	"github.com/poolgate/poolgate/internal/gatewaytest"
	"github.com/poolgate/poolgate/internal/testenv"
)

// These scenarios stop processes of the kill stack: they never run in parallel.

const (
	initialMicros = 10_000_000 // 10 USD
	// Every stream reports the same usage: 1000 × 0.15 + 500 × 0.60 USD per million
	// tokens of gpt-4o-mini = 450 micro-dollars.
	streamCostMicros = 450
)

// streamScript answers a stream of 20 deltas over about half a second.
func streamScript() obj {
	return obj{"text": words(20), "chunk_delay_ms": 25, "usage": obj{"input_tokens": 1000, "output_tokens": 500}}
}

// TestControlsvcKilledDuringStreams: the plugin's controlsvc is SIGKILLed with streams in
// flight and restarted 1.5 s later. Every complete stream has exactly one usage record, the
// balance is the initial one less the records, no slot stays held.
func TestControlsvcKilledDuringStreams(t *testing.T) {
	c := newClient(t, killStack)
	tn := c.NewTenant(gatewaytest.TenantSpec{Name: "kill-ctl", UserConcurrency: 50, BalanceMicros: initialMicros, AccountConcurrency: []int{50}})
	c.ProgramUpstream(tn.Credentials[0], streamScript())

	var killedAt, restartedAt time.Time
	answers := underLoad(t, c, []loadSpec{{tn.Key, 20}}, func(ctx context.Context) error {
		time.Sleep(3 * time.Second)
		killedAt = time.Now()
		if err := killStack.KillControlsvcAt(0); err != nil {
			return err
		}
		time.Sleep(1500 * time.Millisecond)
		if err := killStack.RestartControlsvcAt(ctx, 0); err != nil {
			return err
		}
		restartedAt = time.Now()
		return nil
	}, 5*time.Second)

	o := classify(answers)
	if len(o.others) > 0 {
		t.Fatalf("%d of %d answers neither a complete stream nor a clear 503: %v", len(o.others), len(answers), gatewaytest.Head(o.others))
	}
	inFlight, after := 0, 0
	for _, a := range answers {
		if a.complete && a.sent.Before(killedAt) && a.end.After(killedAt) {
			inFlight++
		}
		if a.complete && a.sent.After(restartedAt) {
			after++
		}
	}
	t.Logf("%d complete streams (%d in flight at the kill, %d sent after the restart), %d × 503",
		len(o.okIDs[0]), inFlight, after, len(o.unavailable))
	if inFlight == 0 || after == 0 {
		t.Fatalf("the load did not straddle the kill: %d streams in flight at the kill, %d after the restart", inFlight, after)
	}
	checkUserLedger(t, c, tn, o.okIDs[0], initialMicros)
	for _, r := range c.ListUsage(tn.KeyID) {
		if r.CostMicros != streamCostMicros {
			t.Fatalf("record %s costs %d micros, want %d", r.RequestID, r.CostMicros, streamCostMicros)
		}
	}
	took := c.WaitNoSlots([]int64{tn.UserID}, tn.AccountIDs, killLeaseTTL+10*time.Second)
	t.Logf("slots back to 0 %v after the drain", took.Round(time.Millisecond))
}

// TestRedisRestartedWithDataLost: Redis is killed under load and an empty one started in
// its place 3 s later. While it is down admissions get the gateway's clear 503 (no hang, no
// cut); within 5 s of its return requests are served again; one lease TTL after it the user
// and account limits hold (a user of concurrency 2, an account of 3, both overloaded); every
// complete stream is in the ledger.
func TestRedisRestartedWithDataLost(t *testing.T) {
	c := newClient(t, killStack)
	small := c.NewTenant(gatewaytest.TenantSpec{Name: "redis-small", UserConcurrency: 2, BalanceMicros: initialMicros, AccountConcurrency: []int{3}})
	big := c.AddUser(small, "redis-big", 10, initialMicros)
	c.ProgramUpstream(small.Credentials[0], streamScript())

	var downAt, backAt time.Time
	answers := underLoad(t, c, []loadSpec{{small.Key, 5}, {big.Key, 7}}, func(ctx context.Context) error {
		time.Sleep(3 * time.Second)
		downAt = time.Now()
		if err := killStack.KillRedis(); err != nil {
			return err
		}
		time.Sleep(3 * time.Second)
		if err := killStack.StartRedis(ctx); err != nil {
			return err
		}
		backAt = time.Now()
		return nil
	}, 12*time.Second)
	t.Logf("load from %s, Redis down at %s, back at %s", answers[0].sent.Format("15:04:05.000"),
		downAt.Format("15:04:05.000"), backAt.Format("15:04:05.000"))

	o := classify(answers)
	if len(o.others) > 0 {
		t.Fatalf("%d of %d answers neither a complete stream nor a clear 503: %v", len(o.others), len(answers), gatewaytest.Head(o.others))
	}
	var refusedWhileDown, lateRefusals int
	var firstServed time.Duration = -1
	for _, a := range answers {
		if clearUnavailable(a) {
			if a.end.Sub(a.sent) > 10*time.Second {
				t.Errorf("a 503 took %v to come", a.end.Sub(a.sent))
			}
			if a.sent.After(downAt) && a.sent.Before(backAt) {
				refusedWhileDown++
			}
			if a.sent.After(backAt.Add(5 * time.Second)) {
				lateRefusals++
			}
		}
		if a.complete && a.sent.After(backAt) && firstServed < 0 {
			firstServed = a.headers.Sub(backAt)
		}
	}
	t.Logf("%d + %d complete streams, %d × 503 (%d sent while Redis was down); first stream after the return served %v after it",
		len(o.okIDs[0]), len(o.okIDs[1]), len(o.unavailable), refusedWhileDown, firstServed)
	if refusedWhileDown == 0 {
		t.Errorf("no admission was refused while Redis was down")
	}
	if lateRefusals > 0 || firstServed < 0 || firstServed > 5*time.Second {
		t.Errorf("not recovered within 5 s of Redis's return: %d × 503 sent later, first stream served after %v", lateRefusals, firstServed)
	}
	limitsFrom := backAt.Add(killLeaseTTL)
	userMax := maxOverlap(answers, map[int]bool{0: true}, limitsFrom)
	accountMax := maxOverlap(answers, map[int]bool{0: true, 1: true}, limitsFrom)
	t.Logf("one lease TTL after the return: at most %d streams of the user (limit 2), %d on the account (limit 3)", userMax, accountMax)
	if userMax > 2 || accountMax > 3 {
		t.Errorf("limits broken after the return: %d streams of a user of concurrency 2, %d on an account of concurrency 3", userMax, accountMax)
	}
	if accountMax < 2 {
		t.Errorf("the account was never loaded after the return (%d streams at most): the limits were not tested", accountMax)
	}
	checkUserLedger(t, c, small, o.okIDs[0], initialMicros)
	checkUserLedger(t, c, big, o.okIDs[1], initialMicros)
	c.WaitNoSlots([]int64{small.UserID, big.UserID}, small.AccountIDs, killLeaseTTL+10*time.Second)
}

// TestPostgresRestartedUnderLoad: PostgreSQL is shut down (fast: open transactions are cut
// and rolled back, clients disconnected) under load and starts again 4 s later. Not an
// immediate shutdown: the test server runs with synchronous_commit off and would lose
// acknowledged commits, which a production server does not. Admissions, which reserve in PostgreSQL, get the
// clear 503 meanwhile; once it is back every complete stream, also those that ended while
// it was down, has its usage record (the plugin retries the reports).
func TestPostgresRestartedUnderLoad(t *testing.T) {
	c := newClient(t, killStack)
	tn := c.NewTenant(gatewaytest.TenantSpec{Name: "pg", UserConcurrency: 20, BalanceMicros: initialMicros, AccountConcurrency: []int{20}})
	c.ProgramUpstream(tn.Credentials[0], streamScript())

	var downAt, backAt time.Time
	answers := underLoad(t, c, []loadSpec{{tn.Key, 10}}, func(ctx context.Context) error {
		time.Sleep(3 * time.Second)
		downAt = time.Now()
		if err := killStack.StopPostgres(testenv.ShutdownFast); err != nil {
			return err
		}
		time.Sleep(4 * time.Second)
		if err := killStack.StartPostgres(ctx); err != nil {
			return err
		}
		backAt = time.Now()
		return nil
	}, 8*time.Second)

	o := classify(answers)
	if len(o.others) > 0 {
		t.Fatalf("%d of %d answers neither a complete stream nor a clear 503: %v", len(o.others), len(answers), gatewaytest.Head(o.others))
	}
	var refusedWhileDown, lateRefusals, endedWhileDown, after int
	for _, a := range answers {
		switch {
		case clearUnavailable(a) && a.sent.After(downAt.Add(time.Second)) && a.sent.Before(backAt):
			refusedWhileDown++
		case clearUnavailable(a) && a.sent.After(backAt.Add(5*time.Second)):
			lateRefusals++
		case a.complete && a.end.After(downAt) && a.end.Before(backAt):
			endedWhileDown++
		case a.complete && a.sent.After(backAt):
			after++
		}
	}
	t.Logf("%d complete streams (%d ended while PostgreSQL was down, %d sent after its return), %d × 503 (%d while down)",
		len(o.okIDs[0]), endedWhileDown, after, len(o.unavailable), refusedWhileDown)
	if refusedWhileDown == 0 {
		t.Errorf("no admission was refused while PostgreSQL was down")
	}
	if lateRefusals > 0 || after == 0 {
		t.Errorf("not recovered within 5 s of PostgreSQL's return: %d × 503 sent later, %d streams after it", lateRefusals, after)
	}
	checkUserLedger(t, c, tn, o.okIDs[0], initialMicros)
	c.WaitNoSlots([]int64{tn.UserID}, tn.AccountIDs, killLeaseTTL+10*time.Second)
}
