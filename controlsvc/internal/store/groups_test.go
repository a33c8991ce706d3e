package store

import (
	"context"
	"errors"
	"testing"
)

func TestGroupsRoundTrip(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()

	g, err := st.CreateGroup(ctx, Group{Name: "default", Platform: "openai", RateMultiplier: "1.123456", Status: "active"})
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if g.ID == 0 || g.Name != "default" || g.Platform != "openai" || g.RateMultiplier != "1.123456" || g.Status != "active" {
		t.Fatalf("CreateGroup() = %+v", g)
	}
	got, err := st.GetGroup(ctx, g.ID)
	if err != nil || got != g {
		t.Fatalf("GetGroup() = %+v, %v; want %+v", got, err, g)
	}
	if _, err := st.CreateGroup(ctx, Group{Name: "claude", Platform: "anthropic", RateMultiplier: "0", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListGroups(ctx)
	if err != nil || len(list) != 2 || list[0].ID != g.ID || list[1].Platform != "anthropic" || list[1].RateMultiplier != "0.000000" {
		t.Fatalf("ListGroups() = %+v, %v", list, err)
	}
}

func TestCreateGroupDuplicateName(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	if _, err := st.CreateGroup(ctx, Group{Name: "dup", Platform: "openai", RateMultiplier: "1", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	_, err := st.CreateGroup(ctx, Group{Name: "dup", Platform: "anthropic", RateMultiplier: "1", Status: "active"})
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("second CreateGroup error = %v, want ConflictError", err)
	}
	var nf *NotFoundError
	if _, err := st.GetGroup(ctx, 12345); !errors.As(err, &nf) || nf.Resource != "group" {
		t.Errorf("GetGroup(12345) error = %v, want NotFoundError", err)
	}
}
