package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSubscriptionsCRUD(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedBill(t, st, billSetup{mode: BillingSubscription, limits: []any{1000, nil, 30000}})
	balanceGroup := seedBill(t, st, billSetup{}).group
	day := 24 * time.Hour
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	sub, err := st.CreateSubscription(ctx, NewSubscription{UserID: f.user, GroupID: f.group, StartsAt: t0, ExpiresAt: t0.Add(30 * day), Note: "jan"})
	if err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	if sub.ID == 0 || sub.Status != SubscriptionActive || sub.Note != "jan" || !sub.StartsAt.Equal(t0) ||
		*sub.Limits[0] != 1000 || sub.Limits[1] != nil || *sub.Limits[2] != 30000 || sub.WindowStarts[0] != nil {
		t.Fatalf("created = %+v", sub)
	}

	var (
		ie *InvalidError
		ce *ConflictError
		nf *NotFoundError
	)
	tests := []struct {
		name      string
		give      NewSubscription
		wantField string // InvalidError field; "" = ConflictError
		wantMsg   string
	}{
		{"balance group", NewSubscription{UserID: f.user, GroupID: balanceGroup, StartsAt: t0, ExpiresAt: t0.Add(day)},
			"group_id", `billing_mode "balance"`},
		{"unknown group", NewSubscription{UserID: f.user, GroupID: 99999, StartsAt: t0, ExpiresAt: t0.Add(day)}, "group_id", "does not exist"},
		{"unknown user", NewSubscription{UserID: 99999, GroupID: f.group, StartsAt: t0, ExpiresAt: t0.Add(day)}, "user_id", "does not exist"},
		{"empty period", NewSubscription{UserID: f.user, GroupID: f.group, StartsAt: t0, ExpiresAt: t0}, "expires_at", "after starts_at"},
		{"overlapping the start", NewSubscription{UserID: f.user, GroupID: f.group, StartsAt: t0.Add(-day), ExpiresAt: t0.Add(time.Second)}, "", "overlapping"},
		{"inside", NewSubscription{UserID: f.user, GroupID: f.group, StartsAt: t0.Add(day), ExpiresAt: t0.Add(2 * day)}, "", "overlapping"},
	}
	for _, tt := range tests {
		_, err := st.CreateSubscription(ctx, tt.give)
		switch {
		case tt.wantField != "":
			if !errors.As(err, &ie) || ie.Field != tt.wantField || !strings.Contains(ie.Message, tt.wantMsg) {
				t.Errorf("%s: error = %v, want InvalidError on %s containing %q", tt.name, err, tt.wantField, tt.wantMsg)
			}
		case !errors.As(err, &ce) || !strings.Contains(ce.Message, tt.wantMsg):
			t.Errorf("%s: error = %v, want ConflictError", tt.name, err)
		}
	}
	// Back to back is not an overlap: a renewal can be booked ahead.
	next, err := st.CreateSubscription(ctx, NewSubscription{UserID: f.user, GroupID: f.group, StartsAt: t0.Add(30 * day), ExpiresAt: t0.Add(60 * day)})
	if err != nil {
		t.Fatalf("back-to-back subscription: %v", err)
	}

	// Extending the first into the second's period conflicts; cancelling the second frees it.
	longer := t0.Add(45 * day)
	if _, err := st.UpdateSubscription(ctx, sub.ID, SubscriptionPatch{ExpiresAt: &longer}); !errors.As(err, &ce) {
		t.Errorf("extending into the renewal: %v, want ConflictError", err)
	}
	cancelled, err := st.CancelSubscription(ctx, next.ID)
	if err != nil || cancelled.Status != SubscriptionCancelled {
		t.Fatalf("CancelSubscription = %+v, %v", cancelled, err)
	}
	note := "extended"
	got, err := st.UpdateSubscription(ctx, sub.ID, SubscriptionPatch{ExpiresAt: &longer, Note: &note})
	if err != nil || !got.ExpiresAt.Equal(longer) || got.Note != "extended" || got.Status != SubscriptionActive {
		t.Fatalf("UpdateSubscription = %+v, %v", got, err)
	}
	// Re-activating the cancelled renewal now overlaps.
	active := SubscriptionActive
	if _, err := st.UpdateSubscription(ctx, next.ID, SubscriptionPatch{Status: &active}); !errors.As(err, &ce) {
		t.Errorf("re-activating an overlapping subscription: %v, want ConflictError", err)
	}
	early := t0.Add(-time.Hour)
	if _, err := st.UpdateSubscription(ctx, sub.ID, SubscriptionPatch{ExpiresAt: &early}); !errors.As(err, &ie) || ie.Field != "expires_at" {
		t.Errorf("expiry before the start: %v, want InvalidError on expires_at", err)
	}
	if _, err := st.UpdateSubscription(ctx, 424242, SubscriptionPatch{Note: &note}); !errors.As(err, &nf) {
		t.Errorf("updating an unknown subscription: %v, want NotFoundError", err)
	}
	if _, err := st.GetSubscription(ctx, 424242); !errors.As(err, &nf) || nf.Resource != "subscription" {
		t.Errorf("GetSubscription(unknown) = %v", err)
	}

	other := seedBill(t, st, billSetup{mode: BillingSubscription})
	third, err := st.CreateSubscription(ctx, NewSubscription{UserID: other.user, GroupID: other.group, StartsAt: t0, ExpiresAt: t0.Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	filters := []struct {
		name string
		f    SubscriptionFilter
		want []int64
	}{
		{"all", SubscriptionFilter{}, []int64{sub.ID, next.ID, third.ID}},
		{"by user", SubscriptionFilter{UserID: f.user}, []int64{sub.ID, next.ID}},
		{"by group", SubscriptionFilter{GroupID: other.group}, []int64{third.ID}},
		{"by status", SubscriptionFilter{Status: SubscriptionCancelled}, []int64{next.ID}},
		{"combined", SubscriptionFilter{UserID: f.user, Status: SubscriptionActive}, []int64{sub.ID}},
		{"nothing", SubscriptionFilter{UserID: other.user, GroupID: f.group}, nil},
	}
	for _, tt := range filters {
		list, err := st.ListSubscriptions(ctx, tt.f, Page{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, s := range list {
			ids = append(ids, s.ID)
		}
		if len(ids) != len(tt.want) || (len(ids) > 0 && (ids[0] != tt.want[0] || ids[len(ids)-1] != tt.want[len(tt.want)-1])) {
			t.Errorf("%s: ids = %v, want %v", tt.name, ids, tt.want)
		}
	}
}

// Concurrent creations of overlapping subscriptions: exactly one wins.
func TestCreateSubscriptionRace(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	f := seedBill(t, st, billSetup{mode: BillingSubscription})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, err := st.CreateSubscription(context.Background(), NewSubscription{UserID: f.user, GroupID: f.group,
				StartsAt: t0.Add(time.Duration(i) * time.Hour), ExpiresAt: t0.Add(30 * 24 * time.Hour)})
			errs <- err
		}()
	}
	ok := 0
	for range 8 {
		var ce *ConflictError
		switch err := <-errs; {
		case err == nil:
			ok++
		case !errors.As(err, &ce):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d overlapping subscriptions created, want 1", ok)
	}
}
