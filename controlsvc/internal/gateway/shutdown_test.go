package gateway

import (
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"

	"github.com/poolgate/poolgate/plugin/wire"
)

// BeginShutdown ends the waits under way and refuses new admissions with the retryable
// shutting_down answer in the client's format; reports go on and release what they hold.
func TestShutdownAnswersWaitersAndKeepsReports(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, DefaultLeaseTTL, admission.WaitConfig{UserTimeout: 20 * time.Second})
	type waiter struct {
		f                          billFixture
		path, format, model, reqID string
		holder                     wire.Grant
	}
	waiters := []*waiter{
		{f: e.seedBillFixture(t, "openai", 10_000_000), path: "/v1/responses", format: "openai", model: "gpt-4o",
			reqID: "req_wait_responses"},
		{f: e.seedBillFixture(t, "anthropic", 10_000_000), path: "/v1/messages", format: "anthropic",
			model: "claude-sonnet-4-5", reqID: "req_wait_messages"},
	}
	results := make([]chan httpResult, len(waiters))
	for i, w := range waiters {
		e.exec(t, `UPDATE users SET concurrency = 1 WHERE id = $1`, w.f.user)
		w.holder = e.mustGrant(t, admission.Request{APIKey: w.f.key, Model: w.model, Path: w.path})
		results[i] = make(chan httpResult, 1)
		go func() {
			results[i] <- e.admit(t, admission.Request{RequestID: w.reqID, APIKey: w.f.key, Model: w.model, Path: w.path})
		}()
		e.waitForWaiters(t, w.f.user, 1)
	}
	began := time.Now()
	e.svc.BeginShutdown()
	for i, w := range waiters {
		res := <-results[i]
		wantError(t, res, 503, admission.ReasonShuttingDown, w.format, "api_error", "Service is restarting, please retry")
		if res.retryAfter != "1" {
			t.Errorf("%s: Retry-After %q, want 1", w.path, res.retryAfter)
		}
	}
	if el := time.Since(began); el > 2*time.Second {
		t.Errorf("waiters answered %s after the shutdown began", el)
	}
	newcomer := e.admit(t, admission.Request{APIKey: waiters[0].f.key, Model: "gpt-4o"})
	wantError(t, newcomer, 503, admission.ReasonShuttingDown, "openai", "api_error", "Service is restarting, please retry")

	for _, w := range waiters {
		if n := e.waiting(t, w.f.user); n != 0 {
			t.Errorf("%s: %d waiters left", w.path, n)
		}
		wantAccepted(t, e.sendReports(t, reportFor(w.holder, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)), 1)
		e.wantReleased(t, w.f, w.reqID)
	}
}

// A re-admission during a shutdown settles its failed attempt and is served when an account
// is free at once; one that would have to wait is refused shutting_down and keeps its grant.
func TestShutdownReadmission(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		backupFull bool
		wantStatus int
	}{
		{name: "a free account serves it", wantStatus: 200},
		{name: "a wait refuses it", backupFull: true, wantStatus: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, DefaultLeaseTTL, admission.WaitConfig{FallbackTimeout: 20 * time.Second})
			f := e.seedBillFixture(t, "openai", 10_000_000)
			e.exec(t, `UPDATE accounts SET priority = 1 WHERE id = $1`, f.account) // chosen first
			backup := e.seedAccount(t, f.group, accountSeed{concurrency: 1, priority: 90})
			g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
			if g.AccountID != f.account {
				t.Fatalf("granted account %d, want %d", g.AccountID, f.account)
			}
			if tt.backupFull {
				e.fillAccount(t, backup, 1)
			}
			e.svc.BeginShutdown()
			res := e.admit(t, admission.Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o",
				Exclude: []int64{f.account}, Failed: &health.Failure{AccountID: f.account, Status: 500, ErrorClass: "upstream_status"}})
			if tt.wantStatus == 503 {
				wantError(t, res, 503, admission.ReasonShuttingDown, "openai", "api_error", "Service is restarting, please retry")
			} else if res.status != tt.wantStatus {
				t.Fatalf("re-admission = %d %s, want %d", res.status, res.body, tt.wantStatus)
			}
			if n := e.count(t, slots.KindAccount, f.account); n != 0 {
				t.Errorf("failed account holds %d slots, want 0 (settled)", n)
			}
			if n := e.count(t, slots.KindUser, f.user); n != 1 {
				t.Errorf("user holds %d slots, want 1 (the grant's)", n)
			}
			if _, ok := e.hold(t, g.UserID, g.RequestID); !ok {
				t.Error("the request's hold is gone, want it kept")
			}
		})
	}
}
