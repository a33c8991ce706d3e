package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"

	"github.com/poolgate/poolgate/plugin/wire"
)

// waiting reports the waiters of a user's queue.
func (e *env) waiting(t *testing.T, user int64) int64 {
	t.Helper()
	l, err := e.slots.Loads(context.Background(), slots.KindUser, []int64{user})
	if err != nil {
		t.Fatalf("Loads: %v", err)
	}
	return l[user].Waiting
}

func (e *env) waitForWaiters(t *testing.T, user, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.waiting(t, user) != n {
		if time.Now().After(deadline) {
			t.Fatalf("user %d: %d waiters, want %d", user, e.waiting(t, user), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Waiters are served first come, first served, each as soon as the slot before it frees.
func TestUserWaitersAreServedInArrivalOrder(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, DefaultLeaseTTL, admission.WaitConfig{UserTimeout: 10 * time.Second})
	f := e.seedFixture(t, 1, "openai")
	e.seedAccount(t, f.group, accountSeed{})
	holder := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})

	const n = 4
	var mu sync.Mutex
	var order []int
	grants := make(chan wire.Grant, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o", RequestID: fmt.Sprintf("req_w%d", i)})
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			grants <- rep
		}()
		e.waitForWaiters(t, f.user, int64(i+1)) // the next one arrives after this one queued
	}
	start := time.Now()
	release := func(g wire.Grant) {
		if err := e.slots.ReleaseMany(context.Background(), []slots.Lease{
			{Kind: slots.KindUser, ID: g.UserID, GrantID: g.GrantID},
			{Kind: slots.KindAccount, ID: g.AccountID, GrantID: g.GrantID}}); err != nil {
			t.Errorf("release: %v", err)
		}
	}
	release(holder)
	for i := 0; i < n; i++ {
		release(<-grants)
	}
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("served in order %v, want arrival order", order)
		}
	}
	// Woken by the release messages, not by the 1 s safety re-check.
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Errorf("serving %d waiters took %s", n, el)
	}
	if c, w := e.count(t, slots.KindUser, f.user), e.waiting(t, f.user); c != 0 || w != 0 {
		t.Errorf("after the scenario: %d active, %d waiting", c, w)
	}
}

func TestUserWaitQueueLimits(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, DefaultLeaseTTL, admission.WaitConfig{UserMaxWaiters: 2, UserTimeout: 400 * time.Millisecond})
	f := e.seedFixture(t, 1, "openai")
	e.seedAccount(t, f.group, accountSeed{})
	e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})

	results := make(chan httpResult, 2)
	for i := 0; i < 2; i++ {
		go func() { results <- e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o"}) }()
	}
	e.waitForWaiters(t, f.user, 2)
	full := e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	wantError(t, full, 429, admission.ReasonUserQueueFull, "openai", "rate_limit_error", "Too many pending requests, please retry later")
	for i := 0; i < 2; i++ {
		wantError(t, <-results, 429, admission.ReasonUserConcurrency, "openai", "rate_limit_error",
			"Concurrency limit exceeded for user, please retry later")
	}
	if w := e.waiting(t, f.user); w != 0 {
		t.Errorf("%d waiters left after their timeout", w)
	}
}

// A caller that gives up frees its place in the queue at once.
func TestWaiterThatLeavesFreesItsPlace(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, DefaultLeaseTTL, admission.WaitConfig{UserTimeout: 20 * time.Second})
	f := e.seedFixture(t, 1, "openai")
	e.seedAccount(t, f.group, accountSeed{})
	e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		body, _ := json.Marshal(admission.Request{APIKey: f.key, Model: "gpt-4o", Path: "/v1/responses", RequestID: "req_leaver"})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/internal/v1/admit", bytes.NewReader(body))
		req.Header.Set(SecretHeader, testSecret)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	e.waitForWaiters(t, f.user, 1)
	left := time.Now()
	cancel()
	<-done
	e.waitForWaiters(t, f.user, 0)
	if el := time.Since(left); el > 500*time.Millisecond {
		t.Errorf("the queue entry outlived its caller by %s", el)
	}
}

func ms(n int64) *int64 { return &n }

// The plugin's wait budget (max_wait_ms) ends a wait before the queue's own timeout, with
// the same refusal, so the admit call always answers within the plugin's bound.
func TestWaitBudgetCapsTheWait(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, DefaultLeaseTTL, admission.WaitConfig{UserTimeout: 20 * time.Second})
	f := e.seedFixture(t, 1, "openai")
	e.seedAccount(t, f.group, accountSeed{})
	e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})

	tests := []struct {
		name    string
		budget  int64
		atLeast time.Duration
		atMost  time.Duration
	}{
		{name: "budget of 300ms", budget: 300, atLeast: 300 * time.Millisecond, atMost: 3 * time.Second},
		{name: "no waiting at all", budget: 0, atLeast: 0, atMost: 2 * time.Second},
	}
	for _, tt := range tests {
		began := time.Now()
		res := e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o", MaxWaitMs: ms(tt.budget)})
		el := time.Since(began)
		wantError(t, res, 429, admission.ReasonUserConcurrency, "openai", "rate_limit_error",
			"Concurrency limit exceeded for user, please retry later")
		if el < tt.atLeast || el > tt.atMost {
			t.Errorf("%s: refused after %s, want between %s and %s", tt.name, el, tt.atLeast, tt.atMost)
		}
		if w := e.waiting(t, f.user); w != 0 {
			t.Errorf("%s: %d waiters left", tt.name, w)
		}
	}
	neg := e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o", MaxWaitMs: ms(-1)})
	wantError(t, neg, 400, admission.ReasonInvalid, "openai", "invalid_request_error", "Invalid max_wait_ms")
}

// The budget bounds the account queue too (here the fallback queue, whose timeout is 20 s).
func TestWaitBudgetCapsAccountWait(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, DefaultLeaseTTL, admission.WaitConfig{UserTimeout: 20 * time.Second, FallbackTimeout: 20 * time.Second})
	f := e.seedFixture(t, 2, "openai")
	acc := e.seedAccount(t, f.group, accountSeed{concurrency: 1})
	first := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"}) // holds the account
	if first.AccountID != acc {
		t.Fatalf("granted account %d, want %d", first.AccountID, acc)
	}
	began := time.Now()
	res := e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o", MaxWaitMs: ms(400)})
	el := time.Since(began)
	wantError(t, res, 429, admission.ReasonAccountConcurrency, "openai", "rate_limit_error",
		"Concurrency limit exceeded for account, please retry later")
	if el < 400*time.Millisecond || el > 3*time.Second {
		t.Errorf("refused after %s, want about the 400ms budget", el)
	}
}
