package holds

import (
	"errors"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// The billing rules as admission applies them (docs/billing.md, "Reserve, then settle"):
// the same refusals, messages and order as ever, and min(estimate, available) held.
func TestReserveRules(t *testing.T) {
	t.Parallel()
	past := time.Now().Add(-time.Minute)
	tests := []struct {
		name         string
		seed         seed
		before       []int64 // amounts held first by other requests (need = amount)
		want, need   int64
		wantHeld     int64
		wantKind     store.RefusalKind
		wantMessage  string
		wantAvail    int64
		wantWindow   string
		wantKeyQuota bool
	}{
		{name: "the whole estimate", seed: seed{balance: 10_000_000}, want: 2_000_000, need: 500_000, wantHeld: 2_000_000},
		{name: "what is available, at least the input", seed: seed{balance: 1_000_000}, want: 2_000_000, need: 500_000, wantHeld: 1_000_000},
		{name: "held by others", seed: seed{balance: 1_000_000}, before: []int64{800_000}, want: 500_000, need: 300_000,
			wantKind: store.RefuseInsufficientBalance, wantMessage: store.MsgInsufficientBalance, wantAvail: 200_000},
		{name: "empty balance refuses even nothing", seed: seed{balance: 0}, want: 0, need: 0,
			wantKind: store.RefuseInsufficientBalance, wantMessage: store.MsgInsufficientBalance},
		{name: "negative balance", seed: seed{balance: -5}, want: 10, need: 0,
			wantKind: store.RefuseInsufficientBalance, wantMessage: store.MsgInsufficientBalance},
		{name: "expired key first", seed: seed{balance: 0, keyExpires: &past}, want: 10, need: 10,
			wantKind: store.RefuseKeyExpired, wantMessage: store.MsgKeyExpired},
		{name: "key quota caps the hold", seed: seed{balance: 10_000_000, quota: ptr(300_000)}, want: 1_000_000, need: 100_000,
			wantHeld: 300_000, wantKeyQuota: true},
		{name: "key quota refuses", seed: seed{balance: 10_000_000, quota: ptr(300_000)}, want: 1_000_000, need: 400_000,
			wantKind: store.RefuseKeyQuota, wantMessage: store.MsgKeyQuota, wantAvail: 300_000},
		{name: "no subscription", seed: seed{mode: store.BillingSubscription, noSub: true}, want: 10, need: 10,
			wantKind: store.RefuseNoSubscription, wantMessage: store.MsgNoSubscription},
		{name: "subscription window caps the hold", seed: seed{mode: store.BillingSubscription, limits: []*int64{ptr(1_000_000)}},
			want: 5_000_000, need: 10, wantHeld: 1_000_000},
		{name: "subscription window exhausted", seed: seed{mode: store.BillingSubscription, limits: []*int64{ptr(1_000_000), ptr(5_000_000)}},
			before: []int64{1_000_000}, want: 10, need: 10,
			wantKind: store.RefuseWindowExhausted, wantMessage: "Daily usage limit exceeded", wantWindow: "daily"},
		{name: "unlimited subscription", seed: seed{mode: store.BillingSubscription}, want: 5_000_000, need: 10, wantHeld: 5_000_000},
		// The client must wait for every exhausted window: the one that ends last is named.
		{name: "both windows exhausted: the later end", seed: seed{mode: store.BillingSubscription, limits: []*int64{ptr(1_000_000), ptr(1_000_000)}},
			before: []int64{1_000_000}, want: 10, need: 10,
			wantKind: store.RefuseWindowExhausted, wantMessage: "Weekly usage limit exceeded", wantWindow: "weekly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.seed)
			var before int64
			for i, a := range tt.before {
				if _, r, err := f.h.Reserve(t.Context(), f.req("other"+string(rune('a'+i)), a, a)); err != nil || r != nil {
					t.Fatalf("holding %d first: %v %+v", a, err, r)
				}
				before += a
			}
			r := f.req("req", tt.want, tt.need)
			r.KeyExpiresAt = tt.seed.keyExpires
			hold, refusal, err := f.h.Reserve(t.Context(), r)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantKind != "" {
				if refusal == nil || refusal.Kind != tt.wantKind || refusal.Message != tt.wantMessage ||
					refusal.AvailableMicros != tt.wantAvail || refusal.Window != tt.wantWindow {
					t.Fatalf("refusal %+v, want %s %q available %d window %q", refusal, tt.wantKind, tt.wantMessage, tt.wantAvail, tt.wantWindow)
				}
				if tt.wantWindow != "" && refusal.RetryAfterSeconds < 1 {
					t.Fatalf("Retry-After %d", refusal.RetryAfterSeconds)
				}
				if h := f.held(t); h.Sum() != before*(1+boolInt(tt.seed.quota != nil)) || h.Holds != len(tt.before) {
					t.Fatalf("a refusal held something: %+v", h)
				}
				return
			}
			if refusal != nil {
				t.Fatalf("refused: %+v", refusal)
			}
			if hold.AmountMicros != tt.wantHeld || hold.KeyQuota != tt.wantKeyQuota || hold.Existing {
				t.Fatalf("hold %+v, want %d micros, key quota %v", hold, tt.wantHeld, tt.wantKeyQuota)
			}
			// Idempotent on the request id: the same hold, nothing checked or held again.
			again, refusal, err := f.h.Reserve(t.Context(), r)
			if err != nil || refusal != nil || !again.Existing || again.AmountMicros != hold.AmountMicros {
				t.Fatalf("re-admission: %+v %+v %v", again, refusal, err)
			}
			h := f.held(t)
			mine := h.Balance
			if f.mode == store.BillingSubscription {
				mine = h.Groups[f.group]
			}
			if mine != before+tt.wantHeld || (tt.wantKeyQuota && h.Keys[f.key] != tt.wantHeld) {
				t.Fatalf("held %+v, want %d (+ the key's %d)", h, before+tt.wantHeld, tt.wantHeld)
			}
			// Another key or group of the user cannot take the request id.
			other := r
			other.GroupID++
			if _, _, err := f.h.Reserve(t.Context(), other); !errors.Is(err, ErrMismatch) {
				t.Fatalf("another group's admission of the id: %v, want ErrMismatch", err)
			}
			other = r
			other.UserID++
			if _, _, err := f.h.Reserve(t.Context(), other); !errors.Is(err, ErrMismatch) {
				t.Fatalf("another user's admission of the id: %v, want ErrMismatch", err)
			}
		})
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Settlement charges the wallet copy what PostgreSQL was charged and releases the hold;
// release gives the hold back; the sweeper releases only expired holds; Extend grows a hold
// by the same rules.
func TestSettleReleaseSweepExtend(t *testing.T) {
	t.Parallel()
	f := newFixture(t, seed{balance: 10_000_000, quota: ptr(8_000_000)})
	ctx := t.Context()
	for _, id := range []string{"a", "b", "c"} {
		if _, r, err := f.h.Reserve(ctx, f.req(id, 2_000_000, 1)); err != nil || r != nil {
			t.Fatalf("reserve %s: %v %+v", id, err, r)
		}
	}
	if n := f.loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1 (the wallets stay loaded)", n)
	}
	f.settle(t, "a", 2_500_000) // an overrun: charged whole
	if n, err := f.h.Release(ctx, f.user, "b"); err != nil || n != 1 {
		t.Fatalf("release: %d %v", n, err)
	}
	if n, _ := f.h.Release(ctx, f.user, "b"); n != 0 {
		t.Fatal("a hold released twice")
	}
	// c extends to 5 M: the balance copy has 10 - 2.5 = 7.5 M, 2 M held by c itself, the key
	// 8 - 2.5 = 5.5 M: c grows by 3 M.
	if r, err := f.h.Extend(ctx, f.req("c", 5_000_000, 0)); err != nil || r != nil {
		t.Fatalf("extend: %v %+v", err, r)
	}
	// and beyond the key's quota it is refused, whole, when the input alone does not fit
	if r, err := f.h.Extend(ctx, f.req("c", 9_000_000, 9_000_000)); err != nil || r == nil || r.Kind != store.RefuseInsufficientBalance {
		t.Fatalf("extend beyond the balance: %v %+v", err, r)
	}
	if r, err := f.h.Extend(ctx, f.req("gone", 5_000_000, 0)); err != nil || r != nil {
		t.Fatalf("extending nothing: %v %+v", err, r)
	}
	if h := f.held(t); h.Balance != 5_000_000 || h.Keys[f.key] != 5_000_000 || h.Holds != 1 {
		t.Fatalf("held %+v, want 5 M on balance and key in 1 hold", h)
	}
	if n, err := f.h.ReleaseExpired(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("sweeper released %d young holds (%v)", n, err)
	}
	if n, err := f.h.ReleaseExpired(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("sweeper released %d expired holds (%v), want 1", n, err)
	}
	if h := f.held(t); h.Sum() != 0 || h.Holds != 0 {
		t.Fatalf("held %+v after the sweep", h)
	}
	// The copy agrees with PostgreSQL: 7.5 M left, so 7.5 M can be held and no more.
	if hold, r, err := f.h.Reserve(ctx, f.req("d", 9_000_000, 1)); err != nil || r != nil || hold.AmountMicros != 5_500_000 {
		t.Fatalf("after settling: %+v %+v %v, want 5.5 M (the key's quota left)", hold, r, err)
	}
	if f.balance(t) != 7_500_000 {
		t.Fatalf("balance %d", f.balance(t))
	}
}
