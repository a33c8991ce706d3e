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
	monthEnd     = time.Date(2024, 11, 19, 8, 0, 0, 0, time.UTC)
	yesterday    = time.Date(2024, 10, 25, 22, 0, 0, 0, time.UTC)
	lastWeek     = time.Date(2024, 10, 20, 8, 0, 0, 0, time.UTC)
	secondsTo    = func(end time.Time) int64 { return int64(end.Sub(billNow) / time.Second) }
	windowLimits = func(d, w, m any) []any { return []any{d, w, m} }
)

func TestReserveSubscriptionWindows(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	loc := berlin(t)
	tests := []struct {
		name       string
		limits     []any
		daily      int64
		dailyAt    *time.Time
		weekly     int64
		weeklyAt   *time.Time
		reserved   int64
		amount     int64
		wantWindow string // "" = admitted
		wantRetry  int64
		wantMsg    string
	}{
		{name: "unlimited", limits: windowLimits(nil, nil, nil), amount: 1 << 40},
		{name: "fits the daily limit exactly", limits: windowLimits(1000, nil, nil), daily: 400, dailyAt: &dayStart, amount: 600},
		{name: "daily limit short by one", limits: windowLimits(1000, nil, nil), daily: 401, dailyAt: &dayStart, amount: 600,
			wantWindow: "daily", wantRetry: secondsTo(dayEnd), wantMsg: "Daily usage limit exceeded"},
		{name: "reservations in flight count", limits: windowLimits(1000, nil, nil), reserved: 500, amount: 501,
			wantWindow: "daily", wantRetry: secondsTo(dayEnd)},
		{name: "used up refuses a free request", limits: windowLimits(1000, nil, nil), daily: 1000, dailyAt: &dayStart, amount: 0,
			wantWindow: "daily", wantRetry: 39600},
		{name: "yesterday's usage counts 0", limits: windowLimits(1000, nil, nil), daily: 1000, dailyAt: &yesterday, amount: 1000},
		{name: "last week's usage counts 0", limits: windowLimits(nil, 1000, nil), weekly: 1000, weeklyAt: &lastWeek, amount: 1000},
		{name: "weekly limit", limits: windowLimits(nil, 1000, nil), weekly: 900, weeklyAt: &weekStart, amount: 101,
			wantWindow: "weekly", wantRetry: secondsTo(weekEnd), wantMsg: "Weekly usage limit exceeded"},
		{name: "monthly limit counts every window's usage", limits: windowLimits(nil, nil, 100), amount: 101,
			wantWindow: "monthly", wantRetry: secondsTo(monthEnd), wantMsg: "Monthly usage limit exceeded"},
		{name: "both exhausted: the later end is named", limits: windowLimits(1000, 1000, nil), daily: 1000, dailyAt: &dayStart,
			weekly: 1000, weeklyAt: &weekStart, amount: 1, wantWindow: "weekly", wantRetry: secondsTo(weekEnd)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedBill(t, st, billSetup{mode: BillingSubscription, limits: tt.limits, maxReserve: 1 << 50}).withSubscription(t, subStart)
			billExec(t, st, `UPDATE subscriptions SET daily_used_micros = $2, daily_window_start = $3, weekly_used_micros = $4,
				weekly_window_start = $5, monthly_used_micros = $2::bigint + $4::bigint, monthly_window_start = $6, reserved_micros = $7 WHERE id = $1`,
				f.sub, tt.daily, tt.dailyAt, tt.weekly, tt.weeklyAt, subStart, tt.reserved)
			res, refusal := f.reserve(t, "r-"+tt.name, tt.amount, billNow, loc)
			if tt.wantWindow == "" {
				if refusal != nil {
					t.Fatalf("refused: %+v", refusal)
				}
				if res.BillingMode != BillingSubscription || res.SubscriptionID == nil || *res.SubscriptionID != f.sub {
					t.Errorf("reservation = %+v, want subscription %d", res, f.sub)
				}
				if s := f.sums(t); s.subReserved != tt.reserved+tt.amount || s.userReserved != 0 {
					t.Errorf("sums = %+v, want the subscription to hold %d", s, tt.reserved+tt.amount)
				}
				return
			}
			if refusal == nil || refusal.Kind != RefuseWindowExhausted || refusal.Window != tt.wantWindow ||
				refusal.RetryAfterSeconds != tt.wantRetry || (tt.wantMsg != "" && refusal.Message != tt.wantMsg) {
				t.Fatalf("refusal = %+v, want %s window, Retry-After %d, %q", refusal, tt.wantWindow, tt.wantRetry, tt.wantMsg)
			}
		})
	}
}

func TestSubscriptionInForce(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	tests := []struct {
		name   string
		starts time.Time
		status string
		want   bool
	}{
		{"running", billNow.Add(-time.Hour), "active", true},
		{"not started", billNow.Add(time.Hour), "active", false},
		{"expired", billNow.Add(-91 * 24 * time.Hour), "active", false},
		{"cancelled", billNow.Add(-time.Hour), "cancelled", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedBill(t, st, billSetup{mode: BillingSubscription}).withSubscription(t, tt.starts)
			billExec(t, st, `UPDATE subscriptions SET status = $2 WHERE id = $1`, f.sub, tt.status)
			_, refusal := f.reserve(t, "r-"+tt.name, 1, billNow, time.UTC)
			if got := refusal == nil; got != tt.want {
				t.Errorf("admitted = %v (%+v), want %v", got, refusal, tt.want)
			}
			sub, err := st.GetSubscription(context.Background(), f.sub)
			if err != nil || sub.InForce(billNow) != tt.want {
				t.Errorf("InForce = %v, %v; want %v", sub.InForce(billNow), err, tt.want)
			}
		})
	}
}

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
	if _, refusal := f.reserve(t, "r1", 800, billNow, loc); refusal != nil {
		t.Fatalf("refused: %+v", refusal)
	}
	res := f.settle(t, "r1", 650, billNow, loc)
	if res.BillingMode != BillingSubscription || res.SubscriptionID == nil || *res.SubscriptionID != f.sub || res.ReservedMicros != 800 {
		t.Fatalf("SettleResult = %+v", res)
	}
	s := f.sums(t)
	if s.daily != 650 || !s.dailyStart.Equal(dayStart) || s.weekly != 650 || !s.weeklyStart.Equal(weekStart) ||
		s.monthly != 5150 || !s.monthlyStart.Equal(subStart) || s.subReserved != 0 || s.balance != 777 || s.quotaUsed != 0 {
		t.Fatalf("after settling: %+v (daily start %v, weekly start %v)", s, s.dailyStart, s.weeklyStart)
	}
	// A second request adds to the current windows; without a reservation it still charges
	// the subscription in force.
	if res := f.settle(t, "r2", 100, billNow.Add(time.Hour), loc); res.SubscriptionID == nil || res.ReservedMicros != 0 {
		t.Fatalf("settling without reservation: %+v", res)
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
