package store

import (
	"context"
	"testing"
)

func eqMicros(a, b *int64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func TestGroupBillingFields(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	def, err := st.CreateGroup(ctx, Group{Name: "plain", Platform: "openai", RateMultiplier: "1", Status: "active"})
	if err != nil {
		t.Fatal(err)
	}
	if def.BillingMode != BillingBalance || def.DefaultMaxOutputTokens != DefaultMaxOutputTokens ||
		def.MaxReserveMicros != DefaultMaxReserveMicros || def.AllowUnpriced || def.DailyLimitMicros != nil {
		t.Fatalf("defaults = %+v", def.GroupBilling)
	}
	g, err := st.CreateGroup(ctx, Group{Name: "sub", Platform: "anthropic", RateMultiplier: "1", Status: "active",
		GroupBilling: GroupBilling{BillingMode: BillingSubscription, DailyLimitMicros: ptr(int64(1)), MonthlyLimitMicros: ptr(int64(0)),
			AllowUnpriced: true, DefaultMaxOutputTokens: 100, MaxReserveMicros: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if g.BillingMode != BillingSubscription || !eqMicros(g.DailyLimitMicros, ptr(int64(1))) || g.WeeklyLimitMicros != nil ||
		!eqMicros(g.MonthlyLimitMicros, ptr(int64(0))) || !g.AllowUnpriced || g.DefaultMaxOutputTokens != 100 || g.MaxReserveMicros != 7 {
		t.Fatalf("created = %+v", g.GroupBilling)
	}
	tests := []struct {
		name  string
		patch GroupPatch
		check func(GroupBilling) bool
	}{
		{"empty patch keeps everything", GroupPatch{}, func(b GroupBilling) bool {
			return b.BillingMode == BillingSubscription && eqMicros(b.DailyLimitMicros, ptr(int64(1))) && b.MaxReserveMicros == 7
		}},
		{"clear daily, set weekly", GroupPatch{DailyLimit: MicrosPatch{Set: true}, WeeklyLimit: MicrosPatch{Set: true, Micros: ptr(int64(50))}},
			func(b GroupBilling) bool {
				return b.DailyLimitMicros == nil && eqMicros(b.WeeklyLimitMicros, ptr(int64(50))) && eqMicros(b.MonthlyLimitMicros, ptr(int64(0)))
			}},
		{"mode and knobs", GroupPatch{BillingMode: ptr(BillingBalance), AllowUnpriced: ptr(false), DefaultMaxOutputTokens: ptr(8192),
			MaxReserveMicros: ptr(int64(9_000_000))}, func(b GroupBilling) bool {
			return b.BillingMode == BillingBalance && !b.AllowUnpriced && b.DefaultMaxOutputTokens == 8192 &&
				b.MaxReserveMicros == 9_000_000 && eqMicros(b.WeeklyLimitMicros, ptr(int64(50)))
		}},
	}
	for _, tt := range tests { // sequential: each patch builds on the previous one
		got, err := st.UpdateGroup(ctx, g.ID, tt.patch)
		if err != nil || !tt.check(got.GroupBilling) {
			t.Fatalf("%s: UpdateGroup = %+v, %v", tt.name, got.GroupBilling, err)
		}
		read, err := st.GetGroup(ctx, g.ID)
		if err != nil || !tt.check(read.GroupBilling) {
			t.Fatalf("%s: GetGroup = %+v, %v", tt.name, read.GroupBilling, err)
		}
	}
}
