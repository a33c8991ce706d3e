package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/poolgate/poolgate/controlsvc/internal/breaker"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
	"github.com/poolgate/poolgate/controlsvc/internal/gateway/health"

	"github.com/poolgate/poolgate/plugin/wire"
)

// breakerViews reads the breakers of an account as the admin API shows them.
func (e *env) breakerViews(t *testing.T, account int64) []breaker.View {
	t.Helper()
	views, err := breaker.New(e.rdb).List(context.Background(), account, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return views
}

// Failures of one model below the threshold only exclude the account for their request; at
// the threshold the breaker opens for that model only, and the account is not a candidate
// for it, while it serves other models and no account-wide mark is set.
func TestBreakerOpensForTheModelOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	primary := e.seedAccount(t, f.group, accountSeed{priority: 1})
	backup := e.seedAccount(t, f.group, accountSeed{priority: 2})
	fails := []health.Failure{{Status: 503, ErrorClass: "upstream_status"}, {ErrorClass: "transport"}, {Status: 529, ErrorClass: "in_stream_error"}}
	for i, fl := range fails {
		g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
		if g.AccountID != primary {
			t.Fatalf("request %d went to %d before the threshold, want %d", i, g.AccountID, primary)
		}
		again := e.failOver(t, f.key, "gpt-4o", g, fl)
		if again.AccountID != backup {
			t.Fatalf("failover %d went to %d, want %d", i, again.AccountID, backup)
		}
		e.release(t, again)
	}
	views := e.breakerViews(t, primary)
	if len(views) != 1 || views[0].Model != "gpt-4o" || views[0].State != "open" || views[0].Failures != 3 ||
		views[0].Reason != "in_stream_error 529" || time.Until(views[0].NextProbeAt) < 25*time.Second {
		t.Fatalf("breakers %+v, want gpt-4o open for ≈30 s after in_stream_error 529", views)
	}
	if n := e.queryInt(t, `SELECT count(*) FROM accounts WHERE id = $1
		AND rate_limited_until IS NULL AND overloaded_until IS NULL AND paused_until IS NULL`, primary); n != 1 {
		t.Fatal("breaker failures marked the whole account")
	}
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	e.release(t, g)
	if g.AccountID != backup {
		t.Fatalf("gpt-4o went to %d with the breaker open, want %d", g.AccountID, backup)
	}
	g = e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o-mini"})
	e.release(t, g)
	if g.AccountID != primary {
		t.Fatalf("gpt-4o-mini went to %d, want %d: the breaker is gpt-4o's only", g.AccountID, primary)
	}
	if got := e.svc.metrics.breakerOpenings.Value(); got != 1 {
		t.Fatalf("breaker openings %d, want 1", got)
	}
}

// When the breakers leave no candidate (panic mode), the accounts are tried all the same: a
// single candidate whose breaker is open is granted, counted in the panics metric, and with
// two candidates whose breakers are both open the priority order stands. A breaker never
// refuses a model on its own.
func TestBreakerPanicWhenEveryCandidateIsOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	open := func(account int64) {
		for i := 0; i < 3; i++ {
			if _, err := breaker.New(e.rdb).Fail(context.Background(), account, "gpt-4o", "transport", "g", breaker.SettingsOf(nil, nil, nil), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name   string
		open   []bool // per account, in priority order
		want   int    // the account granted
		panics int64  // admissions in panic mode
	}{
		{"one candidate", []bool{true}, 0, 1},
		{"every candidate: the priority order stands", []bool{true, true}, 0, 1},
		{"one candidate closed: the open breaker keeps the other out", []bool{true, false}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedFixture(t, 10, "openai")
			accounts := make([]int64, len(tt.open))
			for i, isOpen := range tt.open {
				accounts[i] = e.seedAccount(t, f.group, accountSeed{priority: i + 1})
				if isOpen {
					open(accounts[i])
				}
			}
			panics := e.svc.metrics.breakerPanics.Value()
			g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
			if g.AccountID != accounts[tt.want] {
				t.Fatalf("grant on account %d, want %d", g.AccountID, accounts[tt.want])
			}
			if got := e.svc.metrics.breakerPanics.Value() - panics; got != tt.panics {
				t.Errorf("%d admissions in panic mode, want %d", got, tt.panics)
			}
			e.release(t, g)
		})
	}
}

// After the cool-down exactly one request, on whichever controlsvc instance, is the probe:
// it is sent to the account, a concurrent one is not; the probe's answer closes the breaker.
func TestBreakerHalfOpenProbeAcrossInstancesClosesOnAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc2 := New(e.st, e.rdb, Config{PluginSecret: testSecret, Wait: testWait}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(svc2.Close)
	r := mux.NewRouter()
	svc2.Register(r)
	srv2 := httptest.NewServer(r)
	t.Cleanup(srv2.Close)
	e2 := *e
	e2.url, e2.svc = srv2.URL, svc2

	f := e.seedFixture(t, 10, "openai")
	primary := e.seedAccount(t, f.group, accountSeed{priority: 1})
	backup := e.seedAccount(t, f.group, accountSeed{priority: 2})
	// Three failures a cool-down ago: the breaker is half-open now.
	past := time.Now().Add(-breaker.DefaultCooldown - time.Second)
	for i := 0; i < 3; i++ {
		if _, err := breaker.New(e.rdb).Fail(context.Background(), primary, "gpt-4o", "transport", "g", breaker.SettingsOf(nil, nil, nil), past); err != nil {
			t.Fatal(err)
		}
	}
	if v := e.breakerViews(t, primary); len(v) != 1 || v[0].State != "half_open" {
		t.Fatalf("breakers %+v, want gpt-4o half-open", v)
	}
	grants := make([]wire.Grant, 2)
	var wg sync.WaitGroup
	for i, env := range []*env{e, &e2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := env.admit(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
			if res.status != http.StatusOK {
				t.Errorf("admit = %d %s", res.status, res.body)
				return
			}
			_ = json.Unmarshal(res.body, &grants[i])
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	probes := 0
	var probe wire.Grant
	for _, g := range grants {
		switch g.AccountID {
		case primary:
			probes++
			probe = g
		case backup:
		default:
			t.Fatalf("grant on account %d", g.AccountID)
		}
	}
	if probes != 1 {
		t.Fatalf("%d requests went to the half-open account, want exactly 1", probes)
	}
	// The other grant's answer does not close the breaker; the probe's does, on the other
	// instance than the one that admitted it.
	for _, g := range grants {
		if g.AccountID == backup {
			wantAccepted(t, e.sendReports(t, reportFor(g, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)), 1)
		}
	}
	if v := e.breakerViews(t, primary); len(v) != 1 {
		t.Fatalf("breakers %+v after the other account's answer, want still half-open", v)
	}
	wantAccepted(t, e2.sendReports(t, reportFor(probe, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)), 1)
	if v := e.breakerViews(t, primary); len(v) != 0 {
		t.Fatalf("breakers %+v after the probe's answer, want none", v)
	}
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	e.release(t, g)
	if g.AccountID != primary {
		t.Fatalf("after the probe's answer gpt-4o went to %d, want %d", g.AccountID, primary)
	}
	if u, p, b := e.count(t, "user", f.user), e.count(t, "account", primary), e.count(t, "account", backup); u != 0 || p != 0 || b != 0 {
		t.Fatalf("slots user=%d primary=%d backup=%d, want 0", u, p, b)
	}
}

// A report whose last attempt is the health.Failure its re-admission settled (no account was left)
// does not count it twice; a health.Failure only the report carries (after the commit point)
// counts once.
func TestReportedFailureCountedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	only := e.seedAccount(t, f.group, accountSeed{})
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	res := e.admit(t, admission.Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o",
		Exclude: []int64{only}, Failed: &health.Failure{AccountID: only, ErrorClass: "transport"}})
	wantError(t, res, 503, admission.ReasonNoAccount, "", "api_error", "Service temporarily unavailable")
	rep := reportFor(g, 502, "responses", `null`)
	rep.ErrorClass = "transport"
	rep.Attempts[0].Status, rep.Attempts[0].ErrorClass = 0, "transport"
	wantAccepted(t, e.sendReports(t, rep), 1)

	g2 := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	rep2 := reportFor(g2, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)
	rep2.Attempts[0].ErrorClass = "stream_idle_timeout" // broke after the commit point
	wantAccepted(t, e.sendReports(t, rep2), 1)

	raw, err := e.rdb.HGet(context.Background(), breaker.Key(only), "gpt-4o").Result()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		N int `json:"n"`
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil || st.N != 2 {
		t.Fatalf("breaker %s, want 2 failures counted", raw)
	}
	if u, a := e.count(t, "user", f.user), e.count(t, "account", only); u != 0 || a != 0 {
		t.Fatalf("slots user=%d account=%d, want 0", u, a)
	}
}

// The group's breaker settings apply: with breaker_threshold 1 a single health.Failure opens the
// breaker, for the group's cool-down.
func TestBreakerUsesTheGroupSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	e.exec(t, `UPDATE groups SET breaker_threshold = 1, breaker_cooldown_ms = 5000 WHERE id = $1`, f.group)
	primary := e.seedAccount(t, f.group, accountSeed{priority: 1})
	backup := e.seedAccount(t, f.group, accountSeed{priority: 2})
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	e.release(t, e.failOver(t, f.key, "gpt-4o", g, health.Failure{ErrorClass: "transport"}))
	views := e.breakerViews(t, primary)
	if len(views) != 1 || views[0].State != "open" || time.Until(views[0].NextProbeAt) > 5*time.Second {
		t.Fatalf("breakers %+v, want gpt-4o open for at most 5 s", views)
	}
	g = e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	e.release(t, g)
	if g.AccountID != backup {
		t.Fatalf("gpt-4o went to %d, want %d", g.AccountID, backup)
	}
}

// A half-open account that is busy is not waited for: the probe claim is given back and the
// request goes to another account; the next request may probe.
func TestBreakerBusyProbeGivenBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	primary := e.seedAccount(t, f.group, accountSeed{priority: 1, concurrency: 1})
	backup := e.seedAccount(t, f.group, accountSeed{priority: 2})
	past := time.Now().Add(-breaker.DefaultCooldown - time.Second)
	for i := 0; i < 3; i++ {
		if _, err := breaker.New(e.rdb).Fail(context.Background(), primary, "gpt-4o", "transport", "g", breaker.SettingsOf(nil, nil, nil), past); err != nil {
			t.Fatal(err)
		}
	}
	e.fillAccount(t, primary, 1)
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	e.release(t, g)
	if g.AccountID != backup {
		t.Fatalf("went to %d with the half-open account busy, want %d", g.AccountID, backup)
	}
	if v := e.breakerViews(t, primary); len(v) != 1 || v[0].State != "half_open" || time.Until(v[0].NextProbeAt) > time.Second {
		t.Fatalf("breakers %+v, want half-open with no probe out", v)
	}
	if ok, err := breaker.New(e.rdb).Claim(context.Background(), primary, "gpt-4o", "g_next", time.Now()); err != nil || !ok {
		t.Fatalf("the next request could not claim the probe: %v %v", ok, err)
	}
}

// Dial failures in a row pause the account 5 s, then 10 s; an answer resets the back-off.
func TestDialBackoffGrowsAndResets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	acc := e.seedAccount(t, f.group, accountSeed{})
	ctx := context.Background()
	pausedFor := func() time.Duration {
		t.Helper()
		var secs float64
		if err := e.st.Pool.QueryRow(ctx, `SELECT EXTRACT(EPOCH FROM (paused_until - now()))::float8 FROM accounts
			WHERE id = $1 AND pause_reason = 'upstream unreachable'`, acc).Scan(&secs); err != nil {
			t.Fatal(err)
		}
		return time.Duration(secs * float64(time.Second))
	}
	bs := breaker.SettingsOf(nil, nil, nil)
	e.svc.health.SettleFailure(ctx, health.Failure{AccountID: acc, ErrorClass: "dial"}, "g1", bs)
	if d := pausedFor(); d < 3*time.Second || d > 5*time.Second {
		t.Fatalf("first dial health.Failure paused %v, want ≈ 5 s", d)
	}
	e.svc.health.SettleFailure(ctx, health.Failure{AccountID: acc, ErrorClass: "dial"}, "g2", bs)
	if d := pausedFor(); d < 8*time.Second || d > 10*time.Second {
		t.Fatalf("second dial health.Failure paused %v, want ≈ 10 s", d)
	}
	// An answer (here of a grant admitted before the pause) resets the back-off.
	e.exec(t, `UPDATE accounts SET paused_until = NULL WHERE id = $1`, acc)
	e.svc.AccountsChanged()
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	wantAccepted(t, e.sendReports(t, reportFor(g, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)), 1)
	e.svc.health.SettleFailure(ctx, health.Failure{AccountID: acc, ErrorClass: "dial"}, "g3", bs)
	if d := pausedFor(); d < 3*time.Second || d > 5*time.Second {
		t.Fatalf("a dial health.Failure after an answer paused %v, want ≈ 5 s again", d)
	}
}

// A health.Failure retried on the same account went through no re-admission: the report counts it
// towards the breaker, and an attempt whose health.Failure opened the breaker is stored with
// breaker_open.
func TestReportCountsSameAccountRetriesAndFlagsOpenings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	e.exec(t, `UPDATE groups SET breaker_threshold = 2 WHERE id = $1`, f.group)
	acc := e.seedAccount(t, f.group, accountSeed{})
	g := e.mustGrant(t, admission.Request{APIKey: f.key, Model: "gpt-4o"})
	rep := reportFor(g, 200, "responses", `{"input_tokens":1,"output_tokens":1}`)
	// 500, retried on the same account; then a stream that stalled after the commit point.
	rep.Attempts = []attempt{
		{AccountID: acc, Status: 500, ErrorClass: "upstream_status", RetriedSameAccount: true},
		{AccountID: acc, Status: 200, ErrorClass: "stream_idle_timeout"},
	}
	wantAccepted(t, e.sendReports(t, rep), 1)
	views := e.breakerViews(t, acc)
	if len(views) != 1 || views[0].State != "open" || views[0].Failures != 2 || views[0].Reason != "stream_idle_timeout" {
		t.Fatalf("breakers %+v, want gpt-4o open after 2 failures", views)
	}
	if n := e.queryInt(t, `SELECT count(*) FROM usage_attempts WHERE request_id = $1 AND breaker_open`, g.RequestID); n != 1 {
		t.Fatalf("%d attempts flagged breaker_open, want 1 (the one that opened it)", n)
	}
	if n := e.queryInt(t, `SELECT count(*) FROM usage_attempts WHERE request_id = $1 AND attempt = 2 AND breaker_open`, g.RequestID); n != 1 {
		t.Fatal("the opening attempt (2) is not the flagged one")
	}
}
