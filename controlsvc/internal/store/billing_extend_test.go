package store

import (
	"context"
	"testing"
	"time"
)

// extend asks for amount, refused below need (0: the whole amount).
func (f *billFixture) extend(t *testing.T, req string, amount, need int64) *BillingRefusal {
	t.Helper()
	if need == 0 {
		need = amount
	}
	refusal, err := f.st.extendReservation(context.Background(), ReserveInput{RequestID: req, UserID: f.user,
		APIKeyID: f.key, GroupID: f.group, AmountMicros: amount, MinAmountMicros: need}, billNow, time.UTC)
	if err != nil {
		t.Fatalf("ExtendReservation(%s): %v", req, err)
	}
	return refusal
}

// A reservation raised for a dearer fallback model holds the difference where the
// reservation is held, by the reservation rules; a refusal, a smaller amount or a request
// without a reservation changes nothing.
func TestExtendReservation(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	tests := []struct {
		name        string
		setup       billSetup
		subscribe   bool
		first, want int64 // reserved first, then asked for
		need        int64 // the new input estimate (0: want)
		held        int64 // the reservation's amount afterwards
		refused     RefusalKind
		check       func(t *testing.T, s billSums)
	}{
		{name: "balance and key quota", setup: billSetup{balance: 1000, quota: ptr(int64(2000))}, first: 300, want: 700, held: 700,
			check: func(t *testing.T, s billSums) {
				if s.userReserved != 700 || s.quotaReserved != 700 || s.subReserved != 0 {
					t.Fatalf("sums %+v, want 700 reserved on the user and the key", s)
				}
			}},
		{name: "balance too small for the difference", setup: billSetup{balance: 1000}, first: 300, want: 1001, held: 300,
			refused: RefuseInsufficientBalance,
			check: func(t *testing.T, s billSums) {
				if s.userReserved != 300 {
					t.Fatalf("user reserved %d, want 300 unchanged", s.userReserved)
				}
			}},
		{name: "key quota too small", setup: billSetup{balance: 5000, quota: ptr(int64(500))}, first: 300, want: 600, held: 300,
			refused: RefuseKeyQuota},
		{name: "up to the balance when the new input estimate is covered", setup: billSetup{balance: 1000}, first: 300,
			want: 1500, need: 900, held: 1000},
		{name: "refused when the new input estimate is not", setup: billSetup{balance: 1000}, first: 300,
			want: 1500, need: 1001, held: 300, refused: RefuseInsufficientBalance},
		{name: "capped by max_reserve", setup: billSetup{balance: 5000, maxReserve: 800}, first: 300, want: 5000, held: 800},
		{name: "a smaller amount keeps the reservation", setup: billSetup{balance: 1000}, first: 600, want: 200, held: 600},
		{name: "subscription", setup: billSetup{mode: BillingSubscription, limits: []any{int64(1000)}}, subscribe: true,
			first: 300, want: 900, held: 900,
			check: func(t *testing.T, s billSums) {
				if s.subReserved != 900 || s.userReserved != 0 {
					t.Fatalf("sums %+v, want 900 reserved on the subscription", s)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedBill(t, st, tt.setup)
			if tt.subscribe {
				f.withSubscription(t, billNow.Add(-time.Hour))
			}
			if _, refusal := f.reserve(t, "r-"+tt.name, tt.first, billNow, time.UTC); refusal != nil {
				t.Fatalf("first reservation refused: %+v", refusal)
			}
			refusal := f.extend(t, "r-"+tt.name, tt.want, tt.need)
			if (refusal == nil) != (tt.refused == "") || (refusal != nil && refusal.Kind != tt.refused) {
				t.Fatalf("refusal %+v, want %q", refusal, tt.refused)
			}
			got, ok, err := st.GetReservation(context.Background(), "r-"+tt.name)
			if err != nil || !ok || got.AmountMicros != tt.held {
				t.Fatalf("reservation %+v %v %v, want %d held", got, ok, err, tt.held)
			}
			if tt.check != nil {
				tt.check(t, f.sums(t))
			}
		})
	}
	f := seedBill(t, st, billSetup{balance: 1000})
	if refusal := f.extend(t, "never-reserved", 500, 0); refusal != nil {
		t.Fatalf("extending no reservation: %+v", refusal)
	}
	if s := f.sums(t); s.userReserved != 0 || s.reservations != 0 {
		t.Fatalf("extending no reservation held %+v", s)
	}
}
