package store

import (
	"context"
	"testing"
	"time"
)

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// At billNow (2024-10-27 12:00Z, a 25-hour day in Berlin) a subscription started
// 2024-10-20 08:00Z has these windows:
var (
	subStart     = time.Date(2024, 10, 20, 8, 0, 0, 0, time.UTC)
	dayStart     = time.Date(2024, 10, 26, 22, 0, 0, 0, time.UTC) // Berlin midnight, CEST
	dayEnd       = time.Date(2024, 10, 27, 23, 0, 0, 0, time.UTC) // Berlin midnight, CET
	weekStart    = time.Date(2024, 10, 27, 8, 0, 0, 0, time.UTC)
	weekEnd      = time.Date(2024, 11, 3, 8, 0, 0, 0, time.UTC)
	yesterday    = time.Date(2024, 10, 25, 22, 0, 0, 0, time.UTC)
	lastWeek     = time.Date(2024, 10, 20, 8, 0, 0, 0, time.UTC)
	windowLimits = func(d, w, m any) []any { return []any{d, w, m} }
)

func TestSettleSubscriptionRollsWindowsForward(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	loc := berlin(t)
	f := seedBill(t, st, billSetup{mode: BillingSubscription, limits: windowLimits(1000, 5000, 20000), balance: 777}).
		withSubscription(t, subStart)
	// Yesterday's 900 and last week's 4000 are history; the month's 4500 counts.
	billExec(t, st, `UPDATE subscriptions SET daily_used_micros = 900, daily_window_start = $2, weekly_used_micros = 4000,
		weekly_window_start = $3, monthly_used_micros = 4500, monthly_window_start = $4 WHERE id = $1`,
		f.sub, yesterday, lastWeek, subStart)
	res := f.settle(t, "r1", 650, f.held(t, 800), billNow, loc)
	if res.BillingMode != BillingSubscription || res.SubscriptionID == nil || *res.SubscriptionID != f.sub || res.ReservedMicros != 800 {
		t.Fatalf("SettleResult = %+v", res)
	}
	s := f.sums(t)
	if s.daily != 650 || !s.dailyStart.Equal(dayStart) || s.weekly != 650 || !s.weeklyStart.Equal(weekStart) ||
		s.monthly != 5150 || !s.monthlyStart.Equal(subStart) || s.balance != 777 || s.quotaUsed != 0 {
		t.Fatalf("after settling: %+v (daily start %v, weekly start %v)", s, s.dailyStart, s.weeklyStart)
	}
	// A second request adds to the current windows; without a hold it still charges the
	// subscription in force.
	if res := f.settle(t, "r2", 100, nil, billNow.Add(time.Hour), loc); res.SubscriptionID == nil || res.ReservedMicros != 0 {
		t.Fatalf("settling without hold: %+v", res)
	}
	if s := f.sums(t); s.daily != 750 || s.weekly != 750 || s.monthly != 5250 {
		t.Errorf("after the second settlement: %+v", s)
	}
	// The view of the windows at that time.
	sub, err := st.GetSubscription(context.Background(), f.sub)
	if err != nil {
		t.Fatal(err)
	}
	u := sub.Usage(billNow, loc)
	if u[0].Name != "daily" || u[0].UsedMicros != 750 || !u[0].Window.Start.Equal(dayStart) || !u[0].Window.End.Equal(dayEnd) ||
		*u[0].LimitMicros != 1000 || u[1].UsedMicros != 750 || !u[1].Window.End.Equal(weekEnd) || u[2].UsedMicros != 5250 {
		t.Errorf("Usage = %+v", u)
	}
	// The next Berlin day: the daily usage counts 0 in the view.
	if u := sub.Usage(dayEnd, loc); u[0].UsedMicros != 0 || u[1].UsedMicros != 750 {
		t.Errorf("Usage the next day = %+v", u)
	}
}
