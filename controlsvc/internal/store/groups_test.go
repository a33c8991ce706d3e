package store

import (
	"context"
	"errors"
	"reflect"
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
	if err != nil || !reflect.DeepEqual(got, g) {
		t.Fatalf("GetGroup() = %+v, %v; want %+v", got, err, g)
	}
	if _, err := st.CreateGroup(ctx, Group{Name: "claude", Platform: "anthropic", RateMultiplier: "0", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListGroups(ctx, Page{})
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

func ms(v int64) *int64 { return &v }

// eqMs compares nullable milliseconds by value.
func eqMs(a, b *int64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func TestGroupTimeouts(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()

	g, err := st.CreateGroup(ctx, Group{Name: "deadlines", Platform: "openai", RateMultiplier: "1", Status: "active",
		FirstTokenTimeoutMs: ms(0), StreamIdleTimeoutMs: ms(90_000)})
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if !eqMs(g.FirstTokenTimeoutMs, ms(0)) || !eqMs(g.StreamIdleTimeoutMs, ms(90_000)) {
		t.Fatalf("created timeouts = %v, %v; want 0, 90000", g.FirstTokenTimeoutMs, g.StreamIdleTimeoutMs)
	}
	plain, err := st.CreateGroup(ctx, Group{Name: "defaults", Platform: "openai", RateMultiplier: "1", Status: "active"})
	if err != nil || plain.FirstTokenTimeoutMs != nil || plain.StreamIdleTimeoutMs != nil {
		t.Fatalf("group without timeouts = %+v, %v; want both NULL", plain, err)
	}

	tests := []struct {
		name                string
		patch               GroupPatch
		wantFirst, wantIdle *int64
	}{
		{"unset fields are kept", GroupPatch{}, ms(0), ms(90_000)},
		{"set one", GroupPatch{FirstTokenTimeout: MillisPatch{Set: true, Ms: ms(500)}}, ms(500), ms(90_000)},
		{"null restores the default", GroupPatch{StreamIdleTimeout: MillisPatch{Set: true}}, ms(500), nil},
		{"set both", GroupPatch{FirstTokenTimeout: MillisPatch{Set: true, Ms: ms(MaxGroupTimeoutMs)},
			StreamIdleTimeout: MillisPatch{Set: true, Ms: ms(0)}}, ms(MaxGroupTimeoutMs), ms(0)},
	}
	for _, tt := range tests { // sequential: each case starts from the previous one's result
		got, err := st.UpdateGroup(ctx, g.ID, tt.patch)
		if err != nil {
			t.Fatalf("%s: UpdateGroup: %v", tt.name, err)
		}
		if !eqMs(got.FirstTokenTimeoutMs, tt.wantFirst) || !eqMs(got.StreamIdleTimeoutMs, tt.wantIdle) {
			t.Fatalf("%s: timeouts = %v, %v", tt.name, got.FirstTokenTimeoutMs, got.StreamIdleTimeoutMs)
		}
		if got.Name != "deadlines" || got.RateMultiplier != "1.000000" || got.Status != "active" {
			t.Fatalf("%s: other fields changed: %+v", tt.name, got)
		}
		read, err := st.GetGroup(ctx, g.ID)
		if err != nil || !eqMs(read.FirstTokenTimeoutMs, tt.wantFirst) || !eqMs(read.StreamIdleTimeoutMs, tt.wantIdle) {
			t.Fatalf("%s: GetGroup = %+v, %v", tt.name, read, err)
		}
	}

	// The database refuses what the API would refuse, should anything else write.
	for _, bad := range []int64{-1, MaxGroupTimeoutMs + 1} {
		if _, err := st.UpdateGroup(ctx, g.ID, GroupPatch{FirstTokenTimeout: MillisPatch{Set: true, Ms: ms(bad)}}); err == nil {
			t.Errorf("first_token_timeout_ms %d was stored", bad)
		}
	}
}

func TestUpdateGroupFields(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	a, err := st.CreateGroup(ctx, Group{Name: "a", Platform: "openai", RateMultiplier: "1", Status: "active"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateGroup(ctx, Group{Name: "b", Platform: "openai", RateMultiplier: "1", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	name, rate, status := "a2", "2.5", "disabled"
	got, err := st.UpdateGroup(ctx, a.ID, GroupPatch{Name: &name, RateMultiplier: &rate, Status: &status})
	if err != nil || got.Name != "a2" || got.RateMultiplier != "2.500000" || got.Status != "disabled" || got.Platform != "openai" {
		t.Fatalf("UpdateGroup = %+v, %v", got, err)
	}
	if !got.UpdatedAt.After(a.UpdatedAt) && !got.UpdatedAt.Equal(a.UpdatedAt) {
		t.Errorf("updated_at went backwards: %v -> %v", a.UpdatedAt, got.UpdatedAt)
	}
	taken := "b"
	var ce *ConflictError
	if _, err := st.UpdateGroup(ctx, a.ID, GroupPatch{Name: &taken}); !errors.As(err, &ce) {
		t.Errorf("renaming onto an existing name: %v, want ConflictError", err)
	}
	var nf *NotFoundError
	if _, err := st.UpdateGroup(ctx, 999999, GroupPatch{}); !errors.As(err, &nf) || nf.Resource != "group" {
		t.Errorf("UpdateGroup(999999) error = %v, want NotFoundError", err)
	}
}

// TestGroupTimeoutsReachKeyAuth: admission reads the group's deadlines with the key.
func TestGroupTimeoutsReachKeyAuth(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	user := admSQL(t, st, `INSERT INTO users (name) VALUES ('u') RETURNING id`)
	g, err := st.CreateGroup(ctx, Group{Name: "g", Platform: "openai", RateMultiplier: "1", Status: "active",
		FirstTokenTimeoutMs: ms(750)})
	if err != nil {
		t.Fatal(err)
	}
	admExec(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix) VALUES ($1, $2, 'h-timeouts', 'sk-pg')`, user, g.ID)
	got, err := st.AuthenticateKey(ctx, "h-timeouts")
	if err != nil || !eqMs(got.FirstTokenTimeoutMs, ms(750)) || got.StreamIdleTimeoutMs != nil {
		t.Fatalf("AuthenticateKey = %+v, %v; want first token 750 ms, stream idle NULL", got, err)
	}
	if _, err := st.UpdateGroup(ctx, g.ID, GroupPatch{StreamIdleTimeout: MillisPatch{Set: true, Ms: ms(0)}}); err != nil {
		t.Fatal(err)
	}
	got, err = st.AuthenticateKey(ctx, "h-timeouts")
	if err != nil || !eqMs(got.StreamIdleTimeoutMs, ms(0)) {
		t.Fatalf("after PATCH: AuthenticateKey = %+v, %v; want stream idle 0 (off)", got, err)
	}
}
