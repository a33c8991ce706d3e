package store

import (
	"context"
	"errors"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func TestUsersRoundTrip(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()

	created, err := st.CreateUser(ctx, User{Name: "alice", Concurrency: 3, BalanceMicros: 12_500_000, Status: "active"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if created.ID == 0 || created.Name != "alice" || created.Concurrency != 3 ||
		created.BalanceMicros != 12_500_000 || created.Status != "active" || created.CreatedAt.IsZero() {
		t.Fatalf("CreateUser() = %+v", created)
	}
	got, err := st.GetUser(ctx, created.ID)
	if err != nil || got != created {
		t.Fatalf("GetUser() = %+v, %v; want %+v", got, err, created)
	}
	if _, err := st.CreateUser(ctx, User{Name: "bob", Concurrency: 1, Status: "disabled"}); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListUsers(ctx, Page{})
	if err != nil || len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" {
		t.Fatalf("ListUsers() = %+v, %v; want alice then bob", list, err)
	}
	ids, err := st.UserIDs(ctx)
	if err != nil || len(ids) != 2 || ids[0] != list[0].ID || ids[1] != list[1].ID {
		t.Fatalf("UserIDs() = %v, %v", ids, err)
	}
}

func TestUpdateUser(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	u, err := st.CreateUser(ctx, User{Name: "carol", Concurrency: 5, BalanceMicros: 1, Status: "active"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		patch UserPatch
		check func(User) bool
	}{
		{"name only", UserPatch{Name: ptr("caroline")}, func(g User) bool {
			return g.Name == "caroline" && g.Concurrency == 5 && g.BalanceMicros == 1 && g.Status == "active"
		}},
		{"balance and concurrency", UserPatch{BalanceMicros: ptr(int64(7_000_001)), Concurrency: ptr(0)}, func(g User) bool {
			return g.Name == "caroline" && g.Concurrency == 0 && g.BalanceMicros == 7_000_001
		}},
		{"status", UserPatch{Status: ptr("disabled")}, func(g User) bool {
			return g.Status == "disabled" && g.BalanceMicros == 7_000_001
		}},
		{"empty patch keeps everything", UserPatch{}, func(g User) bool {
			return g.Name == "caroline" && g.Status == "disabled" && g.Concurrency == 0
		}},
	}
	for _, tt := range tests { // sequential: each step builds on the previous one
		got, err := st.UpdateUser(ctx, u.ID, tt.patch)
		if err != nil {
			t.Fatalf("%s: UpdateUser: %v", tt.name, err)
		}
		if !tt.check(got) {
			t.Errorf("%s: UpdateUser() = %+v", tt.name, got)
		}
		if !got.UpdatedAt.After(u.UpdatedAt) && !got.UpdatedAt.Equal(u.UpdatedAt) {
			t.Errorf("%s: updated_at went backwards", tt.name)
		}
	}
}

func TestUserNotFound(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	var nf *NotFoundError
	if _, err := st.GetUser(ctx, 999); !errors.As(err, &nf) || nf.Resource != "user" || nf.ID != 999 {
		t.Errorf("GetUser(999) error = %v, want NotFoundError for user 999", err)
	}
	if _, err := st.UpdateUser(ctx, 999, UserPatch{Name: ptr("x")}); !errors.As(err, &nf) {
		t.Errorf("UpdateUser(999) error = %v, want NotFoundError", err)
	}
}
