package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/internal/seedtest"
	"github.com/poolgate/poolgate/controlsvc/internal/slots"

	"github.com/poolgate/poolgate/plugin/wire"
)

// release gives back the slots of a grant, as the plugin's report would.
func (e *env) release(t *testing.T, g wire.Grant) {
	t.Helper()
	if err := e.slots.ReleaseMany(context.Background(), []slots.Lease{
		{Kind: slots.KindUser, ID: g.UserID, GrantID: g.GrantID},
		{Kind: slots.KindAccount, ID: g.AccountID, GrantID: g.GrantID}}); err != nil {
		t.Fatal(err)
	}
}

// failOver re-admits grant g after its attempt failed with f, and returns the new grant.
func (e *env) failOver(t *testing.T, key, model string, g wire.Grant, f health.Failure) wire.Grant {
	t.Helper()
	f.AccountID = g.AccountID
	return e.mustGrant(t, admission.Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: key, Model: model,
		Exclude: []int64{g.AccountID}, Failed: &f})
}

func (e *env) blockedUntil(t *testing.T, account int64, model string) time.Duration {
	t.Helper()
	return seedtest.BlockedUntil(t, e.st, account, model)
}

func TestModelNotFoundBlocksTheUpstreamModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	mapped := e.seedAccount(t, f.group, accountSeed{priority: 1, mapping: `{"gpt-4o":"gpt-4o-2024-08-06","o3*":""}`})
	plain := e.seedAccount(t, f.group, accountSeed{priority: 2, mapping: `{"gpt-*":""}`})

	g := e.mustGrant(t, admission.Request{RequestID: "req_mnf", APIKey: f.key, Model: "gpt-4o"})
	if g.AccountID != mapped {
		t.Fatalf("first choice %d, want %d", g.AccountID, mapped)
	}
	again := e.failOver(t, f.key, "gpt-4o", g, health.Failure{Status: 404, ErrorClass: "model_not_found"})
	if again.AccountID != plain {
		t.Fatalf("after model_not_found: account %d, want %d", again.AccountID, plain)
	}
	e.release(t, again)
	// The block is on the model the account was sent, after its mapping.
	if d := e.blockedUntil(t, mapped, "gpt-4o-2024-08-06"); d < 29*time.Minute || d > 30*time.Minute {
		t.Fatalf("block lasts %v, want ≈ 30 min", d)
	}
	if n := e.queryInt(t, `SELECT count(*) FROM accounts WHERE id = $1 AND status = 'active'
		AND rate_limited_until IS NULL AND overloaded_until IS NULL AND paused_until IS NULL`, mapped); n != 1 {
		t.Fatal("a model block must not mark the whole account")
	}

	// New requests for the blocked model skip the account at once; other models still use it.
	next := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	e.release(t, next)
	if next.AccountID != plain {
		t.Fatalf("gpt-4o went to %d, want %d (the other is blocked for it)", next.AccountID, plain)
	}
	other := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "o3-mini"})
	e.release(t, other)
	if other.AccountID != mapped {
		t.Fatalf("o3-mini went to %d, want %d (not blocked for it)", other.AccountID, mapped)
	}

	// Every account that serves the model blocked: "none available now", not "no such model".
	g = e.mustGrant(t, admission.Request{RequestID: "req_mnf2", APIKey: f.key, Model: "gpt-4o"})
	res := e.admit(t, admission.Request{RequestID: "req_mnf2", GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o",
		Exclude: []int64{g.AccountID}, Failed: &health.Failure{AccountID: g.AccountID, Status: 404, ErrorClass: "model_not_found"}})
	wantError(t, res, 503, admission.ReasonNoAccount, "", "api_error", "Service temporarily unavailable")
	e.release(t, g)
	if d := e.blockedUntil(t, plain, "gpt-4o"); d < 29*time.Minute {
		t.Fatalf("unmapped account blocked for %v on the requested model, want ≈ 30 min", d)
	}
	res = e.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	wantError(t, res, 503, admission.ReasonNoAccount, "", "api_error", "Service temporarily unavailable")
	res = e.admit(t, admission.Request{APIKey: f.key, Model: "claude-sonnet-4"})
	if res.status != 404 || res.reject != admission.ReasonModelNotFound {
		t.Fatalf("a model no account maps: %d %q, want 404 model_not_found", res.status, res.reject)
	}
}

func TestModelNotFoundInAReportBlocksTheModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	acc := e.seedAccount(t, f.group, accountSeed{mapping: `{"gpt-4o":"gpt-4o-2024-08-06"}`})
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	rep := reportFor(g, 404, "responses", "null")
	rep.Model, rep.UpstreamModel, rep.ErrorClass = "gpt-4o", g.UpstreamModel, "model_not_found"
	rep.Attempts = []attempt{{AccountID: acc, Status: 404, ErrorClass: "model_not_found"}}
	wantAccepted(t, e.sendReports(t, rep), 1)
	if d := e.blockedUntil(t, acc, "gpt-4o-2024-08-06"); d < 29*time.Minute {
		t.Fatalf("block lasts %v, want ≈ 30 min", d)
	}
}

func TestThirdForbiddenDisablesTheAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	bad := e.seedAccount(t, f.group, accountSeed{priority: 1})
	good := e.seedAccount(t, f.group, accountSeed{priority: 2})
	for i := 1; i <= 3; i++ {
		// The pause of the earlier 403 would keep the account out: lift it, as it ends by itself.
		e.exec(t, `UPDATE accounts SET paused_until = NULL WHERE id = $1`, bad)
		e.svc.AccountsChanged()
		g := e.mustGrant(t, admission.Request{RequestID: "req_403", APIKey: f.key, Model: "gpt-4o"})
		if g.AccountID != bad {
			t.Fatalf("403 %d: first choice %d, want %d", i, g.AccountID, bad)
		}
		again := e.failOver(t, f.key, "gpt-4o", g, health.Failure{Status: 403, ErrorClass: "credential"})
		e.release(t, again)
		if again.AccountID != good {
			t.Fatalf("403 %d: failed over to %d, want %d", i, again.AccountID, good)
		}
		var status, reason, pause string
		if err := e.st.Pool.QueryRow(context.Background(),
			`SELECT status, disabled_reason, pause_reason FROM accounts WHERE id = $1 AND paused_until > now() + interval '9 minutes'`,
			bad).Scan(&status, &reason, &pause); err != nil {
			t.Fatalf("403 %d: account not paused for 10 min: %v", i, err)
		}
		wantStatus, wantReason := "active", ""
		if i == 3 {
			wantStatus, wantReason = "disabled", "upstream 403 three times within 3h"
		}
		if status != wantStatus || reason != wantReason || pause != "upstream 403" {
			t.Fatalf("403 %d: status %q reason %q pause %q, want %q %q \"upstream 403\"", i, status, reason, pause, wantStatus, wantReason)
		}
	}
	// Disabled, it is gone from selection even once its pause ends.
	e.exec(t, `UPDATE accounts SET paused_until = NULL WHERE id = $1`, bad)
	e.svc.AccountsChanged()
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	e.release(t, g)
	if g.AccountID != good {
		t.Fatalf("after the third 403: account %d chosen, want %d", g.AccountID, good)
	}
}

func TestClearedStateReachesSelectionAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	limited := e.seedAccount(t, f.group, accountSeed{priority: 1})
	other := e.seedAccount(t, f.group, accountSeed{priority: 2})
	g := e.mustGrant(t, admission.Request{RequestID: "req_clear", APIKey: f.key, Model: "gpt-4o"})
	again := e.failOver(t, f.key, "gpt-4o", g, health.Failure{Status: 429, RetryAfter: "600"})
	e.release(t, again)
	next := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"}) // loads and caches the accounts
	e.release(t, next)
	if next.AccountID != other {
		t.Fatalf("while rate limited: account %d, want %d", next.AccountID, other)
	}
	if _, err := e.st.ClearAccountState(context.Background(), limited); err != nil {
		t.Fatal(err)
	}
	e.svc.AccountsChanged()
	next = e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	e.release(t, next)
	if next.AccountID != limited {
		t.Fatalf("after clear-state: account %d, want %d at once", next.AccountID, limited)
	}
}

func TestConfiguredRateLimitCooldown(t *testing.T) {
	t.Parallel()
	if d := newEnv(t).svc.health.Cooldown(); d != health.DefaultRateLimitCooldown {
		t.Fatalf("default cooldown %v, want %v", d, health.DefaultRateLimitCooldown)
	}
	e := newEnvConfig(t, Config{RateLimitCooldown: 42 * time.Second})
	f := e.seedFixture(t, 10, "openai")
	acc := e.seedAccount(t, f.group, accountSeed{priority: 1})
	e.seedAccount(t, f.group, accountSeed{priority: 2})
	g := e.mustGrant(t, admission.Request{RequestID: "req_cd", APIKey: f.key, Model: "gpt-4o"})
	e.release(t, e.failOver(t, f.key, "gpt-4o", g, health.Failure{Status: 429}))
	if n := e.queryInt(t, `SELECT count(*) FROM accounts WHERE id = $1
		AND rate_limited_until BETWEEN now() + interval '38 seconds' AND now() + interval '43 seconds'`, acc); n != 1 {
		t.Fatal("a 429 without reset headers did not rest the account for the configured 42 s")
	}
}
