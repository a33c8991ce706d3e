package store

import (
	"context"
	"testing"
	"time"
)

func TestMarkAccount(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	acc := admSQL(t, st, `INSERT INTO accounts (name, platform, base_url) VALUES ('a', 'openai', 'http://x') RETURNING id`)

	read := func() (rl, ov, pa *time.Time, reason string) {
		t.Helper()
		if err := st.Pool.QueryRow(ctx, `SELECT rate_limited_until, overloaded_until, paused_until, pause_reason
			FROM accounts WHERE id = $1`, acc).Scan(&rl, &ov, &pa, &reason); err != nil {
			t.Fatal(err)
		}
		return rl, ov, pa, reason
	}

	steps := []struct {
		name   string
		mark   AccountMark
		wantRL time.Time
		wantOV time.Time
		wantPA time.Time
		reason string
	}{
		{name: "rate limited", mark: AccountMark{Kind: MarkRateLimited, Until: now.Add(time.Minute)},
			wantRL: now.Add(time.Minute)},
		{name: "shorter rate limit does not shorten", mark: AccountMark{Kind: MarkRateLimited, Until: now.Add(5 * time.Second)},
			wantRL: now.Add(time.Minute)},
		{name: "longer rate limit extends", mark: AccountMark{Kind: MarkRateLimited, Until: now.Add(time.Hour)},
			wantRL: now.Add(time.Hour)},
		{name: "overloaded", mark: AccountMark{Kind: MarkOverloaded, Until: now.Add(10 * time.Minute)},
			wantRL: now.Add(time.Hour), wantOV: now.Add(10 * time.Minute)},
		{name: "paused with reason", mark: AccountMark{Kind: MarkPaused, Until: now.Add(10 * time.Minute), Reason: "upstream 401"},
			wantRL: now.Add(time.Hour), wantOV: now.Add(10 * time.Minute), wantPA: now.Add(10 * time.Minute), reason: "upstream 401"},
		{name: "a shorter pause keeps the longer one's reason", mark: AccountMark{Kind: MarkPaused, Until: now.Add(5 * time.Second), Reason: "upstream unreachable"},
			wantRL: now.Add(time.Hour), wantOV: now.Add(10 * time.Minute), wantPA: now.Add(10 * time.Minute), reason: "upstream 401"},
		{name: "a longer pause brings its reason", mark: AccountMark{Kind: MarkPaused, Until: now.Add(time.Hour), Reason: "insufficient_quota"},
			wantRL: now.Add(time.Hour), wantOV: now.Add(10 * time.Minute), wantPA: now.Add(time.Hour), reason: "insufficient_quota"},
	}
	for _, s := range steps {
		if _, err := st.MarkAccount(ctx, acc, s.mark); err != nil {
			t.Fatalf("%s: MarkAccount: %v", s.name, err)
		}
		rl, ov, pa, reason := read()
		for _, c := range []struct {
			col  string
			got  *time.Time
			want time.Time
		}{{"rate_limited_until", rl, s.wantRL}, {"overloaded_until", ov, s.wantOV}, {"paused_until", pa, s.wantPA}} {
			switch {
			case c.want.IsZero() && c.got != nil:
				t.Fatalf("%s: %s = %v, want NULL", s.name, c.col, *c.got)
			case !c.want.IsZero() && (c.got == nil || !c.got.Equal(c.want)):
				t.Fatalf("%s: %s = %v, want %v", s.name, c.col, c.got, c.want)
			}
		}
		if reason != s.reason {
			t.Fatalf("%s: pause_reason %q, want %q", s.name, reason, s.reason)
		}
	}

	if _, err := st.MarkAccount(ctx, acc+1000, AccountMark{Kind: MarkPaused, Until: now}); err != nil {
		t.Fatalf("marking an unknown account: %v, want no-op", err)
	}
	if _, err := st.MarkAccount(ctx, acc, AccountMark{Kind: 0, Until: now}); err == nil {
		t.Fatal("unknown mark kind accepted")
	}
}
