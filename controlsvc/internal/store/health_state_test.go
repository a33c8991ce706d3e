package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// forbidden is the 403 mark of the gateway's rule, happening at at.
func forbidden(at time.Time, limit int) AccountMark {
	return AccountMark{Kind: MarkForbidden, Until: at.Add(10 * time.Minute), Reason: "upstream 403",
		Strikes: StrikeRule{At: at, Window: 3 * time.Hour, Limit: limit, Reason: "upstream 403 three times within 3h"}}
}

func seedHealthAccount(t *testing.T, st *Store) int64 {
	t.Helper()
	return admSQL(t, st, `INSERT INTO accounts (name, platform, base_url) VALUES ('a', 'openai', 'http://x') RETURNING id`)
}

func TestForbiddenStrikesDisableOnTheThirdWithinThreeHours(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	t0 := time.Now().Add(-5 * time.Hour).Truncate(time.Microsecond)
	h := func(hours float64) time.Time { return t0.Add(time.Duration(hours * float64(time.Hour))) }
	tests := []struct {
		name string
		at   []time.Time
		// disabledAt is the index of the strike that must disable the account, -1 = none.
		disabledAt int
	}{
		{name: "three within an hour", at: []time.Time{h(0), h(0.5), h(1)}, disabledAt: 2},
		{name: "three just within 3h", at: []time.Time{h(0), h(1), h(2.9)}, disabledAt: 2},
		{name: "two only pause", at: []time.Time{h(0), h(1)}, disabledAt: -1},
		{name: "spread over more than 3h", at: []time.Time{h(0), h(2), h(4), h(5.5)}, disabledAt: -1},
		{name: "sliding window: the last three within 3h", at: []time.Time{h(0), h(2), h(3.5), h(4)}, disabledAt: 3},
		{name: "out of order arrival counts by time", at: []time.Time{h(2), h(0), h(1)}, disabledAt: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc := seedHealthAccount(t, st)
			for i, at := range tt.at {
				res, err := st.MarkAccount(ctx, acc, forbidden(at, 3))
				if err != nil {
					t.Fatalf("strike %d: %v", i, err)
				}
				if res.Disabled != (i == tt.disabledAt) {
					t.Fatalf("strike %d: disabled = %v, want %v", i, res.Disabled, i == tt.disabledAt)
				}
			}
			a, err := st.GetAccount(ctx, acc)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus, wantReason := "active", ""
			if tt.disabledAt >= 0 {
				wantStatus, wantReason = "disabled", "upstream 403 three times within 3h"
			}
			if a.Status != wantStatus || a.DisabledReason != wantReason {
				t.Fatalf("status %q reason %q, want %q %q", a.Status, a.DisabledReason, wantStatus, wantReason)
			}
			if a.PausedUntil == nil || a.PauseReason != "upstream 403" {
				t.Fatalf("paused_until %v reason %q, want a pause for upstream 403", a.PausedUntil, a.PauseReason)
			}
			if len(a.ForbiddenAt) > 3 {
				t.Fatalf("kept %d strikes, want at most the limit (3)", len(a.ForbiddenAt))
			}
		})
	}
}

func TestForbiddenStrikeKeepsAnOperatorsDisable(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	acc := seedHealthAccount(t, st)
	admExec(t, st, `UPDATE accounts SET status = 'disabled' WHERE id = $1`, acc)
	now := time.Now()
	for i := 0; i < 3; i++ {
		res, err := st.MarkAccount(ctx, acc, forbidden(now.Add(time.Duration(i)*time.Second), 3))
		if err != nil || res.Disabled {
			t.Fatalf("strike %d on a disabled account: %+v %v, want no new disable", i, res, err)
		}
	}
	a, err := st.GetAccount(ctx, acc)
	if err != nil || a.Status != "disabled" || a.DisabledReason != "" {
		t.Fatalf("account = status %q reason %q (%v), want the operator's disable without a health reason",
			a.Status, a.DisabledReason, err)
	}
	// An unknown account is a no-op.
	if res, err := st.MarkAccount(ctx, acc+1000, forbidden(now, 3)); err != nil || res.Disabled {
		t.Fatalf("strike on an unknown account: %+v %v", res, err)
	}
	if _, err := st.MarkAccount(ctx, acc, AccountMark{Kind: MarkForbidden, Until: now}); err == nil {
		t.Fatal("a forbidden mark without a strike rule was accepted")
	}
}

// Strikes from many instances at once are all counted: the row lock makes the count exact.
func TestForbiddenStrikesAreCountedAtomically(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	const n = 12
	acc := seedHealthAccount(t, st)
	now := time.Now().Truncate(time.Microsecond)
	var wg sync.WaitGroup
	results := make(chan MarkResult, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		at := now.Add(time.Duration(i) * time.Millisecond)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := st.MarkAccount(ctx, acc, forbidden(at, n))
			if err != nil {
				errs <- err
				return
			}
			results <- res
		}()
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent strike: %v", err)
	}
	disabled := 0
	for res := range results {
		if res.Disabled {
			disabled++
		}
	}
	a, err := st.GetAccount(ctx, acc)
	if err != nil {
		t.Fatal(err)
	}
	if disabled != 1 || a.Status != "disabled" || len(a.ForbiddenAt) != n {
		t.Fatalf("after %d concurrent strikes with limit %d: %d disabled it, status %q, %d strikes stored; want exactly 1, disabled, %d",
			n, n, disabled, a.Status, len(a.ForbiddenAt), n)
	}
}

func TestModelBlocks(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	g := admSQL(t, st, `INSERT INTO groups (name, platform) VALUES ('g', 'openai') RETURNING id`)
	acc := seedHealthAccount(t, st)
	admExec(t, st, `INSERT INTO account_groups (account_id, group_id) VALUES ($1, $2)`, acc, g)
	now := time.Now().Truncate(time.Microsecond)
	block := func(model string, until time.Time) {
		t.Helper()
		if _, err := st.MarkAccount(ctx, acc, AccountMark{Kind: MarkModelBlocked, Model: model, Until: until}); err != nil {
			t.Fatalf("blocking %s: %v", model, err)
		}
	}
	// An expired block, as left behind by an earlier mark.
	admExec(t, st, `INSERT INTO account_model_blocks (account_id, model, blocked_until) VALUES ($1, 'old', now() - interval '1 minute')`, acc)
	a, err := st.GetAccount(ctx, acc)
	if err != nil || len(a.ModelBlocks) != 1 {
		t.Fatalf("GetAccount blocks = %v (%v), want the stored expired block", a.ModelBlocks, err)
	}
	cands, err := st.GroupAccounts(ctx, g, "openai")
	if err != nil || len(cands) != 1 || cands[0].ModelBlocks != nil {
		t.Fatalf("GroupAccounts = %+v (%v), want no block in force", cands, err)
	}

	block("gpt-4o", now.Add(30*time.Minute))
	block("gpt-4o", now.Add(5*time.Minute)) // a shorter block never shortens a longer one
	block("o3", now.Add(time.Hour))
	a, err = st.GetAccount(ctx, acc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"gpt-4o": now.Add(30 * time.Minute), "o3": now.Add(time.Hour)}
	if len(a.ModelBlocks) != len(want) {
		t.Fatalf("blocks = %v, want %v (the expired one purged)", a.ModelBlocks, want)
	}
	for m, until := range want {
		if !a.ModelBlocks[m].Equal(until) {
			t.Fatalf("block %s until %v, want %v", m, a.ModelBlocks[m], until)
		}
	}
	cands, err = st.GroupAccounts(ctx, g, "openai")
	if err != nil || len(cands) != 1 || len(cands[0].ModelBlocks) != 2 || !cands[0].ModelBlocks["o3"].Equal(want["o3"]) {
		t.Fatalf("GroupAccounts blocks = %+v (%v), want %v", cands, err, want)
	}

	if _, err := st.MarkAccount(ctx, acc+1000, AccountMark{Kind: MarkModelBlocked, Model: "x", Until: now.Add(time.Minute)}); err != nil {
		t.Fatalf("blocking on an unknown account: %v, want a no-op", err)
	}
	if _, err := st.MarkAccount(ctx, acc, AccountMark{Kind: MarkModelBlocked, Until: now.Add(time.Minute)}); err == nil {
		t.Fatal("a model block without a model was accepted")
	}
}

func TestClearAccountState(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	now := time.Now()
	markAll := func(t *testing.T, acc int64) {
		t.Helper()
		for _, m := range []AccountMark{
			{Kind: MarkRateLimited, Until: now.Add(time.Hour)},
			{Kind: MarkOverloaded, Until: now.Add(time.Hour)},
			{Kind: MarkModelBlocked, Model: "gpt-4o", Until: now.Add(time.Hour)},
			forbidden(now, 3),
			forbidden(now.Add(time.Second), 3),
		} {
			if _, err := st.MarkAccount(ctx, acc, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name       string
		prepare    func(t *testing.T, acc int64)
		wantStatus string
	}{
		{name: "temporary states", prepare: markAll, wantStatus: "active"},
		{name: "disabled by the 403 rule is re-enabled", wantStatus: "active", prepare: func(t *testing.T, acc int64) {
			markAll(t, acc)
			if res, err := st.MarkAccount(ctx, acc, forbidden(now.Add(2*time.Second), 3)); err != nil || !res.Disabled {
				t.Fatalf("third strike: %+v %v, want disabled", res, err)
			}
		}},
		{name: "disabled by an operator stays disabled", wantStatus: "disabled", prepare: func(t *testing.T, acc int64) {
			markAll(t, acc)
			admExec(t, st, `UPDATE accounts SET status = 'disabled' WHERE id = $1`, acc)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc := seedHealthAccount(t, st)
			tt.prepare(t, acc)
			a, err := st.ClearAccountState(ctx, acc)
			if err != nil {
				t.Fatalf("ClearAccountState: %v", err)
			}
			if a.RateLimitedUntil != nil || a.OverloadedUntil != nil || a.PausedUntil != nil || a.PauseReason != "" ||
				a.DisabledReason != "" || a.ForbiddenAt != nil || a.ModelBlocks != nil || a.Status != tt.wantStatus {
				t.Fatalf("after clear-state: %+v, want no state and status %q", a, tt.wantStatus)
			}
			// The 403 count starts again: two more 403s do not disable.
			for i := 0; i < 2; i++ {
				if res, err := st.MarkAccount(ctx, acc, forbidden(now.Add(time.Duration(10+i)*time.Second), 3)); err != nil || res.Disabled {
					t.Fatalf("403 %d after clear-state: %+v %v, want a pause only", i, res, err)
				}
			}
		})
	}

	var nf *NotFoundError
	if _, err := st.ClearAccountState(ctx, 987654); !errors.As(err, &nf) {
		t.Fatalf("unknown account: %v, want NotFoundError", err)
	}
	gone := seedHealthAccount(t, st)
	if err := st.DeleteAccount(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClearAccountState(ctx, gone); !errors.As(err, &nf) {
		t.Fatalf("deleted account: %v, want NotFoundError", err)
	}
}

// Setting the status is the operator's decision: it drops the 403 rule's reason, and
// setting it active forgets the strikes.
func TestUpdateAccountStatusResetsStrikes(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	acc := seedHealthAccount(t, st)
	now := time.Now()
	for i := 0; i < 3; i++ {
		if _, err := st.MarkAccount(ctx, acc, forbidden(now.Add(time.Duration(i)*time.Second), 3)); err != nil {
			t.Fatal(err)
		}
	}
	a, err := st.UpdateAccount(ctx, acc, AccountPatch{Name: ptr("renamed")})
	if err != nil || a.Status != "disabled" || a.DisabledReason == "" {
		t.Fatalf("unrelated patch: status %q reason %q (%v), want the rule's disable kept", a.Status, a.DisabledReason, err)
	}
	a, err = st.UpdateAccount(ctx, acc, AccountPatch{Status: ptr("active")})
	if err != nil || a.Status != "active" || a.DisabledReason != "" || a.ForbiddenAt != nil {
		t.Fatalf("re-enabled: status %q reason %q strikes %v (%v)", a.Status, a.DisabledReason, a.ForbiddenAt, err)
	}
	if res, err := st.MarkAccount(ctx, acc, forbidden(now.Add(time.Minute), 3)); err != nil || res.Disabled {
		t.Fatalf("first 403 after re-enabling: %+v %v, want a pause only", res, err)
	}
}
