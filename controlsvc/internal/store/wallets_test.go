package store

import (
	"context"
	"testing"
	"time"
)

// The wallets admission loads name the subscription in force only: started, not expired,
// active (the holds are checked against it, package holds).
func TestSubscriptionInForce(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	now := time.Now()
	tests := []struct {
		name   string
		starts time.Time
		status string
		want   bool
	}{
		{"running", now.Add(-time.Hour), "active", true},
		{"not started", now.Add(time.Hour), "active", false},
		{"expired", now.Add(-91 * 24 * time.Hour), "active", false},
		{"cancelled", now.Add(-time.Hour), "cancelled", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedBill(t, st, billSetup{mode: BillingSubscription}).withSubscription(t, tt.starts)
			billExec(t, st, `UPDATE subscriptions SET status = $2 WHERE id = $1`, f.sub, tt.status)
			w, err := st.LoadWallets(context.Background(), f.user, f.key, f.group, now)
			if err != nil {
				t.Fatal(err)
			}
			if got := w.Subscription != nil && w.Subscription.ID == f.sub; got != tt.want {
				t.Errorf("wallets' subscription %+v, want in force %v", w.Subscription, tt.want)
			}
			sub, err := st.GetSubscription(context.Background(), f.sub)
			if err != nil || sub.InForce(now) != tt.want {
				t.Errorf("InForce = %v, %v; want %v", sub.InForce(now), err, tt.want)
			}
		})
	}
}

// The loaded windows count only the current windows' usage: yesterday's and last week's
// is history (billing.UsedNow), this month's counts; the ends are the current windows'.
func TestLoadWalletsCountsCurrentWindows(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	f := seedBill(t, st, billSetup{mode: BillingSubscription, limits: windowLimits(1000, 5000, 20000)}).withSubscription(t, subStart)
	billExec(t, st, `UPDATE subscriptions SET daily_used_micros = 900, daily_window_start = $2, weekly_used_micros = 4000,
		weekly_window_start = $3, monthly_used_micros = 4500, monthly_window_start = $4 WHERE id = $1`,
		f.sub, yesterday, lastWeek, subStart)
	w, err := st.LoadWallets(context.Background(), f.user, f.key, f.group, billNow)
	if err != nil {
		t.Fatal(err)
	}
	s := w.Subscription
	if s == nil || s.Used != [3]int64{0, 0, 4500} || *s.Limits[0] != 1000 || *s.Limits[1] != 5000 || *s.Limits[2] != 20000 ||
		!s.Ends[1].Equal(weekEnd) {
		t.Fatalf("subscription wallet %+v", s)
	}
}
