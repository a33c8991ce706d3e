package admission

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

func TestBindingValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		want  binding
	}{
		{name: "plain id written before preferred accounts", value: "42", want: binding{account: 42}},
		{name: "with preferred", value: "42:7", want: binding{account: 42, preferred: 7}},
		{name: "preferred equal to account", value: "42:42", want: binding{account: 42}},
		{name: "garbled preferred", value: "42:x", want: binding{account: 42}},
		{name: "garbled", value: "x:7", want: binding{}},
		{name: "empty", value: "", want: binding{}},
		{name: "negative", value: "-3", want: binding{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseBinding(tt.value); got != tt.want {
				t.Fatalf("parseBinding(%q) = %+v, want %+v", tt.value, got, tt.want)
			}
			if tt.want.account > 0 && parseBinding(tt.want.value()) != tt.want {
				t.Fatalf("%+v does not survive its value %q", tt.want, tt.want.value())
			}
		})
	}
}

func TestSessionNextBinding(t *testing.T) {
	t.Parallel()
	cands := func(ids ...int64) []candidate {
		out := make([]candidate, len(ids))
		for i, id := range ids {
			out[i] = candidate{acc: &groupAccount{CandidateAccount: store.CandidateAccount{ID: id}}}
		}
		return out
	}
	const p, f, g = 1, 2, 3
	tests := []struct {
		name    string
		ss      session
		chosen  int64
		cands   []candidate
		want    binding
		written bool
	}{
		{name: "new session", ss: session{}, chosen: p, cands: cands(p, f), want: binding{account: p}, written: true},
		{name: "bound account refreshed", ss: session{bound: binding{account: p}}, chosen: p, cands: cands(p, f),
			want: binding{account: p}, written: true},
		{name: "failover remembers the bound account", ss: session{bound: binding{account: p}}, chosen: f,
			cands: cands(f), want: binding{account: f, preferred: p}, written: true},
		{name: "served by the fallback keeps the preferred", ss: session{bound: binding{account: f, preferred: p}},
			chosen: f, cands: cands(f), want: binding{account: f, preferred: p}, written: true},
		{name: "second failover keeps the first preferred", ss: session{bound: binding{account: f, preferred: p}},
			chosen: g, cands: cands(g), want: binding{account: g, preferred: p}, written: true},
		{name: "home again binds plainly", ss: session{bound: binding{account: f, preferred: p}}, chosen: p,
			cands: cands(p, f), want: binding{account: p}, written: true},
		{name: "content seed served elsewhere while its account is busy",
			ss: session{content: true, bound: binding{account: p}}, chosen: f, cands: cands(p, f),
			want: binding{account: p}, written: false},
		{name: "content seed whose account left the candidates moves",
			ss: session{content: true, bound: binding{account: p}}, chosen: f, cands: cands(f),
			want: binding{account: f, preferred: p}, written: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ss.hash = "ab"
			got, written := tt.ss.next(tt.chosen, tt.cands)
			if got != tt.want || written != tt.written {
				t.Fatalf("next = %+v written %v, want %+v written %v", got, written, tt.want, tt.written)
			}
		})
	}
}

// A session failed over from its preferred account is served by the fallback while the
// preferred one is out, and by the preferred one again as soon as it is a candidate.
func TestSessionComesHomeAfterFailover(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	primary := e.seedAccount(t, f.group, accountSeed{priority: 1})
	fallback := e.seedAccount(t, f.group, accountSeed{priority: 2})
	hash := strings.Repeat("a1", 32)
	g := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
	if g.AccountID != primary {
		t.Fatalf("session placed on %d, want the primary %d", g.AccountID, primary)
	}
	g = e.mustGrant(t, Request{RequestID: g.RequestID, GrantID: g.GrantID, APIKey: f.key, Model: "gpt-4o",
		SessionHash: hash, Exclude: []int64{primary},
		Failed: &failure{AccountID: primary, Status: 429, RetryAfter: "600"}})
	e.release(t, g)
	if g.AccountID != fallback {
		t.Fatalf("failed over to %d, want %d", g.AccountID, fallback)
	}
	if b := e.binding(t, f.group, hash); b != (binding{account: fallback, preferred: primary}) {
		t.Fatalf("binding after failover = %+v, want %d remembering %d", b, fallback, primary)
	}
	// During the outage the session stays on the fallback.
	g = e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
	e.release(t, g)
	if g.AccountID != fallback {
		t.Fatalf("during the outage: account %d, want %d", g.AccountID, fallback)
	}
	e.exec(t, `UPDATE accounts SET rate_limited_until = NULL WHERE id = $1`, primary)
	e.svc.AccountsChanged()
	for i := 0; i < 3; i++ {
		g = e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
		e.release(t, g)
		if g.AccountID != primary {
			t.Fatalf("after recovery, request %d: account %d, want the primary %d", i, g.AccountID, primary)
		}
	}
	if b := e.binding(t, f.group, hash); b != (binding{account: primary}) {
		t.Fatalf("binding after coming home = %+v, want %d alone", b, primary)
	}
}

// A binding written before preferred accounts existed ("<id>") still binds the session.
func TestPlainBindingStillBinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	e.seedAccount(t, f.group, accountSeed{priority: 1})
	old := e.seedAccount(t, f.group, accountSeed{priority: 2})
	hash := strings.Repeat("b2", 32)
	if err := e.rdb.Set(context.Background(), stickyKey(f.group, hash), old, stickyTTL).Err(); err != nil {
		t.Fatal(err)
	}
	g := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
	e.release(t, g)
	if g.AccountID != old {
		t.Fatalf("account %d, want the bound %d", g.AccountID, old)
	}
}

// A busy sticky account: a content-seeded session takes a free account at once and keeps
// its binding; an explicit session waits for its account (and here times out waiting).
func TestBusyStickyAccountBySessionSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		source string
	}{
		{name: "content", source: sessionSourceContent},
		{name: "explicit", source: sessionSourceExplicit},
		{name: "absent is explicit", source: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedFixture(t, 10, "openai")
			bound := e.seedAccount(t, f.group, accountSeed{priority: 1, concurrency: 1})
			free := e.seedAccount(t, f.group, accountSeed{priority: 2})
			hash := strings.Repeat("c3", 32)
			e.release(t, e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash, SessionSource: tt.source}))
			e.fillAccount(t, bound, 1)
			res := e.admit(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash, SessionSource: tt.source})
			if tt.source == sessionSourceContent {
				if res.status != 200 {
					t.Fatalf("content session: %d %s, want a grant on the free account", res.status, res.body)
				}
				g := e.grantOf(t, res)
				e.release(t, g)
				if g.AccountID != free {
					t.Fatalf("content session: account %d, want the free %d", g.AccountID, free)
				}
			} else if res.status != 429 {
				t.Fatalf("explicit session: %d %s, want 429 after waiting for its busy account", res.status, res.body)
			}
			if b := e.binding(t, f.group, hash); b != (binding{account: bound}) {
				t.Fatalf("binding = %+v, want %d unchanged", b, bound)
			}
		})
	}
	f := e.seedFixture(t, 10, "openai")
	res := e.admit(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: strings.Repeat("d4", 32), SessionSource: "guess"})
	wantError(t, res, 400, ReasonInvalid, "openai", "invalid_request_error", "Invalid session_source")
}

// A session whose preferred account is busy is served by the account it was failed over to,
// without waiting, and keeps remembering its preferred account.
func TestBusyHomeLeavesTheSessionOnItsFallback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedFixture(t, 10, "openai")
	home := e.seedAccount(t, f.group, accountSeed{priority: 1, concurrency: 1})
	fallback := e.seedAccount(t, f.group, accountSeed{priority: 2})
	e.seedAccount(t, f.group, accountSeed{priority: 3})
	hash := strings.Repeat("e5", 32)
	b := binding{account: fallback, preferred: home}
	if err := e.rdb.Set(context.Background(), stickyKey(f.group, hash), b.value(), stickyTTL).Err(); err != nil {
		t.Fatal(err)
	}
	e.fillAccount(t, home, 1)
	g := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash, SessionSource: sessionSourceExplicit})
	e.release(t, g)
	if g.AccountID != fallback {
		t.Fatalf("account %d, want the fallback %d while home is busy", g.AccountID, fallback)
	}
	if got := e.binding(t, f.group, hash); got != b {
		t.Fatalf("binding = %+v, want %+v", got, b)
	}
}

// A session's binding moves when its account is rate-limited, or blocked for the session's
// model: the session goes to an account that can serve it, remembering the old one as its
// preferred account ("Sticky sessions"); with no account usable at all the binding is dropped.
func TestStickyBindingMovesWhenItsAccountIsOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name string
		fail failure
	}{
		{name: "rate limited", fail: failure{Status: 429, RetryAfter: "600"}},
		{name: "blocked for the model", fail: failure{Status: 404, ErrorClass: "model_not_found"}},
		{name: "paused", fail: failure{Status: 401, ErrorClass: "credential"}},
		{name: "out of credit", fail: failure{Status: 429, ErrorClass: "quota"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedFixture(t, 10, "openai")
			bound := e.seedAccount(t, f.group, accountSeed{priority: 1})
			spare := e.seedAccount(t, f.group, accountSeed{priority: 2})
			hash := strings.Repeat("cd", 32)
			first := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
			e.release(t, first)
			if first.AccountID != bound {
				t.Fatalf("session bound to %d, want %d", first.AccountID, bound)
			}
			// Another request, without the session, has its attempt on the bound account fail.
			g := e.mustGrant(t, Request{RequestID: "req_other_" + t.Name(), APIKey: f.key, Model: "gpt-4o"})
			e.release(t, e.failOver(t, f.key, "gpt-4o", g, tt.fail))

			next := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
			e.release(t, next)
			if next.AccountID != spare {
				t.Fatalf("session request went to %d, want %d", next.AccountID, spare)
			}
			if b := e.binding(t, f.group, hash); b != (binding{account: spare, preferred: bound}) {
				t.Fatalf("binding = %+v, want %d remembering %d", b, spare, bound)
			}
		})
	}

	t.Run("no account left", func(t *testing.T) {
		f := e.seedFixture(t, 10, "openai")
		only := e.seedAccount(t, f.group, accountSeed{})
		hash := strings.Repeat("ef", 32)
		e.release(t, e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash}))
		e.exec(t, `UPDATE accounts SET rate_limited_until = now() + interval '10 minutes' WHERE id = $1`, only)
		e.svc.AccountsChanged()
		res := e.admit(t, Request{APIKey: f.key, Model: "gpt-4o", SessionHash: hash})
		wantError(t, res, 503, ReasonNoAccount, "", "api_error", "Service temporarily unavailable")
		if err := e.rdb.Get(context.Background(), stickyKey(f.group, hash)).Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("binding still there (%v), want it dropped", err)
		}
	})
}
