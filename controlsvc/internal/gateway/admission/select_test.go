package admission

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"
)

func TestSelectionOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hourAgo, minuteAgo := time.Now().Add(-time.Hour), time.Now().Add(-time.Minute)

	t.Run("lowest priority number first", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		e.seedAccount(t, f.group, accountSeed{priority: 10})
		best := e.seedAccount(t, f.group, accountSeed{priority: 5})
		e.seedAccount(t, f.group, accountSeed{priority: 7})
		e.fillAccount(t, best, 9) // load does not beat priority
		if got := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o"}).AccountID; got != best {
			t.Fatalf("chose account %d, want %d", got, best)
		}
	})

	t.Run("then least loaded, as a share of concurrency", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		half := e.seedAccount(t, f.group, accountSeed{concurrency: 2})
		fortyPct := e.seedAccount(t, f.group, accountSeed{concurrency: 10})
		e.fillAccount(t, half, 1)
		e.fillAccount(t, fortyPct, 4)
		if got := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o"}).AccountID; got != fortyPct {
			t.Fatalf("chose account %d, want the 40%%-loaded %d", got, fortyPct)
		}
	})

	t.Run("then least recently used, never used first", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		recent := e.seedAccount(t, f.group, accountSeed{lastUsed: &minuteAgo})
		old := e.seedAccount(t, f.group, accountSeed{lastUsed: &hourAgo})
		never := e.seedAccount(t, f.group, accountSeed{})
		want := []int64{never, old, recent}
		var exclude []int64
		for i, w := range want {
			got := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", Exclude: exclude}).AccountID
			if got != w {
				t.Fatalf("pick %d: chose account %d, want %d", i, got, w)
			}
			exclude = append(exclude, got)
		}
	})

	t.Run("excluded accounts are skipped", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		first := e.seedAccount(t, f.group, accountSeed{priority: 1})
		second := e.seedAccount(t, f.group, accountSeed{priority: 2})
		got := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", Exclude: []int64{first}}).AccountID
		if got != second {
			t.Fatalf("chose account %d, want %d", got, second)
		}
	})

	t.Run("accounts not serving the model are skipped", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		e.seedAccount(t, f.group, accountSeed{priority: 1, mapping: `{"gpt-4o":""}`})
		wild := e.seedAccount(t, f.group, accountSeed{priority: 2, mapping: `{"claude-*":"claude-sonnet-4"}`})
		rep := e.mustGrant(t, Request{APIKey: f.key, Model: "claude-3-5-haiku"})
		if rep.AccountID != wild || rep.UpstreamModel != "claude-sonnet-4" {
			t.Fatalf("grant %d/%q, want %d/claude-sonnet-4", rep.AccountID, rep.UpstreamModel, wild)
		}
	})

	t.Run("full accounts are skipped", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		full := e.seedAccount(t, f.group, accountSeed{priority: 1, concurrency: 1})
		other := e.seedAccount(t, f.group, accountSeed{priority: 9})
		e.fillAccount(t, full, 1)
		if got := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o"}).AccountID; got != other {
			t.Fatalf("chose account %d, want %d", got, other)
		}
	})
}

// Selections are remembered at once, so equal accounts take turns even within the account
// cache's TTL, and last_used_at reaches PostgreSQL in the background.
func TestSelectionRotatesAndRecordsLastUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	a := e.seedAccount(t, f.group, accountSeed{})
	b := e.seedAccount(t, f.group, accountSeed{})
	var prev int64
	for i := range 6 {
		rep := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o"})
		if rep.AccountID == prev {
			t.Fatalf("pick %d: account %d chosen twice in a row, want alternation", i, prev)
		}
		prev = rep.AccountID
		// Free the slot so that only recency decides (load would otherwise alternate too).
		if err := e.slots.Release(context.Background(), slots.KindAccount, rep.AccountID, rep.GrantID); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := e.queryInt(t, `SELECT count(*) FROM accounts WHERE id IN ($1, $2) AND last_used_at > now() - interval '1 minute'`, a, b)
		k := e.queryInt(t, `SELECT count(*) FROM api_keys WHERE user_id = $1 AND last_used_at IS NOT NULL`, f.user)
		if n == 2 && k == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last_used_at set on %d/2 accounts and %d/1 keys after 5 s", n, k)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestReadmissionMarksFailedAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		failed     failure
		column     string // health column that must be set, "" = none
		wantSecs   float64
		wantReason string
	}{
		{name: "429 retry-after seconds", failed: failure{Status: 429, RetryAfter: "120"}, column: "rate_limited_until", wantSecs: 120},
		{name: "429 retry-after http date", failed: failure{Status: 429, RetryAfter: httpDate}, column: "rate_limited_until", wantSecs: 90},
		{name: "429 ratelimit reset duration", failed: failure{Status: 429, RatelimitReset: "1m30s"}, column: "rate_limited_until", wantSecs: 90},
		{name: "429 longer of both headers", failed: failure{Status: 429, RetryAfter: "2", RatelimitReset: "30s"}, column: "rate_limited_until", wantSecs: 30},
		{name: "429 default cooldown", failed: failure{Status: 429}, column: "rate_limited_until", wantSecs: 5},
		{name: "429 capped at two hours", failed: failure{Status: 429, RetryAfter: "86400"}, column: "rate_limited_until", wantSecs: 7200},
		{name: "out of credit paused", failed: failure{Status: 429, ErrorClass: "quota"}, column: "paused_until", wantSecs: 3600, wantReason: "insufficient_quota"},
		{name: "dial failure paused briefly", failed: failure{ErrorClass: "dial"}, column: "paused_until", wantSecs: 5, wantReason: "upstream unreachable"},
		// Once each below the breaker's threshold: excluded for the request only.
		{name: "529 only excluded", failed: failure{Status: 529, ErrorClass: "upstream_status"}},
		{name: "transport error only excluded", failed: failure{Status: 502, ErrorClass: "transport"}},
		{name: "timeout only excluded", failed: failure{ErrorClass: "first_token_timeout"}},
		{name: "401 paused", failed: failure{Status: 401, ErrorClass: "credential"}, column: "paused_until", wantSecs: 600, wantReason: "upstream 401"},
		{name: "403 paused", failed: failure{Status: 403, ErrorClass: "credential"}, column: "paused_until", wantSecs: 600, wantReason: "upstream 403"},
		{name: "generic 401 only excluded", failed: failure{Status: 401, ErrorClass: "upstream_status"}},
		{name: "generic 403 only excluded", failed: failure{Status: 403, ErrorClass: "upstream_status"}},
		{name: "500 only excluded", failed: failure{Status: 500, ErrorClass: "upstream_status"}},
		{name: "503 only excluded", failed: failure{Status: 503, ErrorClass: "upstream_status"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedFixture(t, 1, "openai")
			primary := e.seedAccount(t, f.group, accountSeed{priority: 1})
			backup := e.seedAccount(t, f.group, accountSeed{priority: 2})
			first := e.mustGrant(t, Request{RequestID: "req_" + t.Name(), APIKey: f.key, Model: "gpt-4o"})
			if first.AccountID != primary {
				t.Fatalf("first choice %d, want %d", first.AccountID, primary)
			}
			failed := tt.failed
			failed.AccountID = primary
			again := e.mustGrant(t, Request{RequestID: "req_" + t.Name(), GrantID: first.GrantID, APIKey: f.key,
				Model: "gpt-4o", Exclude: []int64{primary}, Failed: &failed})
			if again.GrantID != first.GrantID || again.AccountID != backup {
				t.Fatalf("re-admission = grant %s account %d, want grant %s account %d",
					again.GrantID, again.AccountID, first.GrantID, backup)
			}
			// The user slot is held once (concurrency 1 would refuse a second grant); the failed
			// account's slot is back.
			if u, p, b := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, primary),
				e.count(t, slots.KindAccount, backup); u != 1 || p != 0 || b != 1 {
				t.Fatalf("slots user=%d primary=%d backup=%d, want 1, 0, 1", u, p, b)
			}

			var secs *float64
			var reason string
			col := tt.column
			if col == "" {
				col = "COALESCE(rate_limited_until, overloaded_until, paused_until)"
			}
			if err := e.st.Pool.QueryRow(context.Background(),
				`SELECT EXTRACT(EPOCH FROM (`+col+` - now()))::float8, pause_reason FROM accounts WHERE id = $1`,
				primary).Scan(&secs, &reason); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.column == "" && secs != nil:
				t.Fatalf("account marked for %.0fs, want no mark", *secs)
			case tt.column != "" && secs == nil:
				t.Fatalf("%s not set", tt.column)
			case tt.column != "" && (*secs < tt.wantSecs-3 || *secs > tt.wantSecs+1):
				t.Fatalf("%s = now + %.1fs, want ≈ %.0fs", tt.column, *secs, tt.wantSecs)
			}
			if reason != tt.wantReason {
				t.Fatalf("pause_reason %q, want %q", reason, tt.wantReason)
			}

			// A mark takes effect at once in this process; a plain 5xx does not outlast the request.
			other := e.seedUser(t, 5, 1_000_000)
			fresh := e.mustGrant(t, Request{APIKey: e.seedKey(t, other, f.group), Model: "gpt-4o"})
			wantNext := backup
			if tt.column == "" {
				wantNext = primary
			}
			if fresh.AccountID != wantNext {
				t.Fatalf("next request chose %d, want %d", fresh.AccountID, wantNext)
			}
		})
	}
}

// A refused re-admission keeps the grant: the plugin's final report releases it.
func TestRefusedReadmissionKeepsGrant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 1, "openai")
	only := e.seedAccount(t, f.group, accountSeed{})
	g := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o"})
	res := e.admit(t, Request{GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o", Exclude: []int64{only},
		Failed: &failure{AccountID: only, Status: 429, RetryAfter: "30"}})
	wantError(t, res, 503, ReasonNoAccount, "", "api_error", "Service temporarily unavailable")
	if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, only); u != 1 || a != 0 {
		t.Fatalf("slots user=%d account=%d after refused re-admission, want 1 and 0", u, a)
	}
	if n := e.queryInt(t, `SELECT count(*) FROM accounts WHERE id = $1 AND rate_limited_until > now()`, only); n != 1 {
		t.Fatal("failed account not marked on a refused re-admission")
	}
}

// The failed attempt is settled even when the re-admission is refused for billing: here the
// next account would be sent a model without a price. (A balance that ran out meanwhile does
// not refuse a re-admission: the request holds its reservation; billing_test.go.)
func TestReadmissionRefusedForBillingStillSettlesFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 2, "anthropic")
	acc := e.seedAccount(t, f.group, accountSeed{platform: "anthropic", priority: 1})
	unpriced := e.seedAccount(t, f.group, accountSeed{platform: "anthropic", priority: 2,
		mapping: `{"claude-sonnet-4":"claude-unpriced-test"}`})
	g := e.mustGrant(t, Request{APIKey: f.key, Model: "claude-sonnet-4", Path: "/v1/messages"})
	if g.AccountID != acc {
		t.Fatalf("first choice %d, want %d", g.AccountID, acc)
	}
	res := e.admit(t, Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: f.key, Model: "claude-sonnet-4",
		Path: "/v1/messages", Exclude: []int64{acc}, Failed: &failure{AccountID: acc, Status: 429, RetryAfter: "60"}})
	wantError(t, res, 400, ReasonInvalid, "anthropic", "invalid_request_error", "No price configured for model claude-unpriced-test")
	if a, b := e.count(t, slots.KindAccount, acc), e.count(t, slots.KindAccount, unpriced); a != 0 || b != 0 {
		t.Fatalf("account slots still held: failed %d, refused %d", a, b)
	}
	if n := e.queryInt(t, `SELECT count(*) FROM accounts WHERE id = $1 AND rate_limited_until > now()`, acc); n != 1 {
		t.Fatal("failed account not marked rate-limited")
	}
	if u := e.count(t, slots.KindUser, f.user); u != 1 {
		t.Fatalf("user slots %d, want the grant kept (1)", u)
	}
}
