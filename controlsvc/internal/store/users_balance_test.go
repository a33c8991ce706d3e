package store

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestBalanceAdjustments(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	u, err := st.CreateUser(ctx, User{Name: "payer", Concurrency: 1, BalanceMicros: 5_000_000, Status: "active"})
	if err != nil {
		t.Fatal(err)
	}
	var ie *InvalidError
	tests := []struct {
		name        string
		amount      int64
		wantBalance int64
		wantErr     string // InvalidError message part; "" = success
	}{
		{"credit", 2_500_000, 7_500_000, ""},
		{"debit", -7_000_000, 500_000, ""},
		{"debit below zero is refused", -500_001, 500_000, "negative (balance is 0.5 USD)"},
		{"debit to exactly zero", -500_000, 0, ""},
		{"one micro", 1, 1, ""},
		{"overflow is refused", 1<<63 - 1, 1, "out of range"},
	}
	var balance int64
	for _, tt := range tests { // sequential: each step adjusts the previous balance
		got, err := st.AdjustBalance(ctx, u.ID, tt.amount, "note "+tt.name)
		if tt.wantErr != "" {
			if !errors.As(err, &ie) || ie.Field != "amount_usd" || !strings.Contains(ie.Message, tt.wantErr) {
				t.Errorf("%s: error = %v, want InvalidError containing %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.BalanceMicros != tt.wantBalance {
			t.Fatalf("%s: AdjustBalance = %+v, %v; want balance %d", tt.name, got, err, tt.wantBalance)
		}
		balance = got.BalanceMicros
	}
	// PATCH-style set is audited too.
	if _, err := st.UpdateUser(ctx, u.ID, UserPatch{BalanceMicros: ptr(int64(3))}); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListBalanceAdjustments(ctx, u.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	wantNotes := []string{NoteBalanceSet, "note one micro", "note debit to exactly zero", "note debit", "note credit", NoteInitialBalance}
	if len(list) != len(wantNotes) {
		t.Fatalf("adjustments = %+v, want %d", list, len(wantNotes))
	}
	var sum int64
	for i, a := range list {
		if a.Note != wantNotes[i] || a.UserID != u.ID {
			t.Errorf("adjustment %d = %+v, want note %q", i, a, wantNotes[i])
		}
		sum += a.AmountMicros
	}
	if list[0].AmountMicros != 3-balance || list[0].BalanceAfterMicros != 3 || sum != 3 {
		t.Errorf("newest = %+v, sum of amounts %d; want the set recorded as %d and the sum to equal the balance 3",
			list[0], sum, 3-balance)
	}
	page, err := st.ListBalanceAdjustments(ctx, u.ID, list[1].ID, 2)
	if err != nil || len(page) != 2 || page[0].ID != list[2].ID || page[1].ID != list[3].ID {
		t.Errorf("page before %d = %+v, %v", list[1].ID, page, err)
	}
	var nf *NotFoundError
	if _, err := st.AdjustBalance(ctx, 9999, 1, "x"); !errors.As(err, &nf) {
		t.Errorf("AdjustBalance(unknown) = %v, want NotFoundError", err)
	}
	if _, err := st.ListBalanceAdjustments(ctx, 9999, 0, 10); !errors.As(err, &nf) {
		t.Errorf("ListBalanceAdjustments(unknown) = %v, want NotFoundError", err)
	}
	// A user created without money has no adjustment.
	empty, _ := st.CreateUser(ctx, User{Name: "empty", Status: "active"})
	if l, err := st.ListBalanceAdjustments(ctx, empty.ID, 0, 10); err != nil || len(l) != 0 {
		t.Errorf("adjustments of a new user without balance = %+v, %v", l, err)
	}
}

func TestUserGroupRates(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	f := seedBill(t, st, billSetup{})
	g2 := seedBill(t, st, billSetup{}).group
	r, err := st.SetUserGroupRate(ctx, f.user, f.group, "0.5")
	if err != nil || r.RateMultiplier != "0.500000" || r.UserID != f.user || r.GroupID != f.group {
		t.Fatalf("SetUserGroupRate = %+v, %v", r, err)
	}
	if r, err = st.SetUserGroupRate(ctx, f.user, f.group, "2.25"); err != nil || r.RateMultiplier != "2.250000" {
		t.Fatalf("replacing the rate = %+v, %v", r, err)
	}
	if _, err := st.SetUserGroupRate(ctx, f.user, g2, "0"); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListUserGroupRates(ctx, f.user, Page{})
	if err != nil || len(list) != 2 || list[0].GroupID != f.group || list[1].RateMultiplier != "0.000000" {
		t.Fatalf("ListUserGroupRates = %+v, %v", list, err)
	}
	// The usage writer's rate lookup sees the override.
	terms, err := st.GroupTerms(ctx, []UserGroup{{f.user, f.group}, {f.user, g2}})
	if err != nil || terms[UserGroup{f.user, f.group}].RateMicros != 2_250_000 || terms[UserGroup{f.user, g2}].RateMicros != 0 {
		t.Errorf("GroupTerms = %v, %v", terms, err)
	}
	if err := st.DeleteUserGroupRate(ctx, f.user, f.group); err != nil {
		t.Fatal(err)
	}
	var nf *NotFoundError
	if err := st.DeleteUserGroupRate(ctx, f.user, f.group); !errors.As(err, &nf) {
		t.Errorf("deleting twice = %v, want NotFoundError", err)
	}
	if _, err := st.SetUserGroupRate(ctx, 9999, f.group, "1"); !errors.As(err, &nf) || nf.Resource != "user" {
		t.Errorf("unknown user = %v", err)
	}
	if _, err := st.SetUserGroupRate(ctx, f.user, 9999, "1"); !errors.As(err, &nf) || nf.Resource != "group" {
		t.Errorf("unknown group = %v", err)
	}
	if _, err := st.ListUserGroupRates(ctx, 9999, Page{}); !errors.As(err, &nf) {
		t.Errorf("listing for an unknown user = %v", err)
	}
}
