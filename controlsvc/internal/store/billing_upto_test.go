package store

import (
	"context"
	"testing"
	"time"
)

// TestReserveUpToAvailable (issue 14 §5): a reservation holds min(estimate, available) and
// is refused only when less than the input estimate (MinAmountMicros) is available; the
// refusal says how much was available.
func TestReserveUpToAvailable(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	tests := []struct {
		name          string
		setup         billSetup
		reservedFirst int64 // held by another request first
		amount, need  int64
		wantAmount    int64
		wantKind      RefusalKind
		wantAvailable int64
	}{
		{name: "estimate within the balance", setup: billSetup{balance: 3000}, amount: 2000, need: 100, wantAmount: 2000},
		{name: "estimate beyond the balance holds the balance", setup: billSetup{balance: 3000}, amount: 4850, need: 50,
			wantAmount: 3000},
		{name: "max_reserve still caps", setup: billSetup{balance: 3000, maxReserve: 1000}, amount: 4850, need: 50,
			wantAmount: 1000},
		{name: "what others hold is not available", setup: billSetup{balance: 3000}, reservedFirst: 2500, amount: 4850,
			need: 50, wantAmount: 500},
		{name: "input estimate not covered", setup: billSetup{balance: 3000}, reservedFirst: 2990, amount: 4850, need: 50,
			wantKind: RefuseInsufficientBalance, wantAvailable: 10},
		{name: "key quota caps the hold", setup: billSetup{balance: 3000, quota: ptr(int64(700))}, amount: 4850, need: 50,
			wantAmount: 700},
		{name: "key quota below the input estimate", setup: billSetup{balance: 3000, quota: ptr(int64(40))}, amount: 4850,
			need: 50, wantKind: RefuseKeyQuota, wantAvailable: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedBill(t, st, tt.setup)
			if tt.reservedFirst > 0 {
				if _, refusal := f.reserve(t, "first-"+tt.name, tt.reservedFirst, billNow, time.UTC); refusal != nil {
					t.Fatalf("first reservation refused: %+v", refusal)
				}
			}
			res, refusal, err := st.reserve(context.Background(), ReserveInput{RequestID: "req-" + tt.name, UserID: f.user,
				APIKeyID: f.key, GroupID: f.group, AmountMicros: tt.amount, MinAmountMicros: tt.need}, billNow, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			s := f.sums(t)
			if tt.wantKind != "" {
				if refusal == nil || refusal.Kind != tt.wantKind || refusal.AvailableMicros != tt.wantAvailable {
					t.Fatalf("refusal = %+v, want %s with %d available", refusal, tt.wantKind, tt.wantAvailable)
				}
				if s.userReserved != tt.reservedFirst {
					t.Errorf("a refusal held money: %+v", s)
				}
				return
			}
			if refusal != nil {
				t.Fatalf("refused: %+v", refusal)
			}
			if res.AmountMicros != tt.wantAmount || s.userReserved != tt.reservedFirst+tt.wantAmount {
				t.Errorf("held %d (user reserved %d), want %d", res.AmountMicros, s.userReserved, tt.wantAmount)
			}
		})
	}
}
