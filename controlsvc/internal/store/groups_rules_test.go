package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestGroupModelRules(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()

	plain, err := st.CreateGroup(ctx, Group{Name: "plain", Platform: "openai", RateMultiplier: "1", Status: "active"})
	if err != nil {
		t.Fatal(err)
	}
	if plain.ModelMapping == nil || len(plain.ModelMapping) != 0 || plain.RestrictModels || plain.ClaudeCodeOnly {
		t.Fatalf("defaults = %+v, want an empty (non-nil) mapping and both flags off", plain.GroupModelRules)
	}

	mapping := map[string]string{"sonnet": "claude-sonnet-4-5", "claude-haiku*": "claude-haiku*"}
	g, err := st.CreateGroup(ctx, Group{Name: "claude", Platform: "anthropic", RateMultiplier: "1", Status: "active",
		GroupModelRules: GroupModelRules{ModelMapping: mapping, RestrictModels: true, ClaudeCodeOnly: true}})
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	want := GroupModelRules{ModelMapping: mapping, RestrictModels: true, ClaudeCodeOnly: true}
	if !reflect.DeepEqual(g.GroupModelRules, want) {
		t.Fatalf("created rules = %+v, want %+v", g.GroupModelRules, want)
	}
	if read, err := st.GetGroup(ctx, g.ID); err != nil || !reflect.DeepEqual(read.GroupModelRules, want) {
		t.Fatalf("GetGroup rules = %+v, %v", read.GroupModelRules, err)
	}

	f, tr := false, true
	other := map[string]string{"opus": "claude-opus-4-1"}
	empty := map[string]string{}
	tests := []struct {
		name  string
		patch GroupPatch
		want  GroupModelRules
	}{
		{"unset fields are kept", GroupPatch{}, want},
		{"mapping replaced as a whole", GroupPatch{ModelMapping: &other},
			GroupModelRules{ModelMapping: other, RestrictModels: true, ClaudeCodeOnly: true}},
		{"flags off", GroupPatch{RestrictModels: &f, ClaudeCodeOnly: &f}, GroupModelRules{ModelMapping: other}},
		{"mapping cleared once unrestricted", GroupPatch{ModelMapping: &empty}, GroupModelRules{ModelMapping: empty}},
		{"restricted together with a mapping", GroupPatch{ModelMapping: &mapping, RestrictModels: &tr},
			GroupModelRules{ModelMapping: mapping, RestrictModels: true}},
	}
	for _, tt := range tests { // sequential: each case starts from the previous one's result
		got, err := st.UpdateGroup(ctx, g.ID, tt.patch)
		if err != nil {
			t.Fatalf("%s: UpdateGroup: %v", tt.name, err)
		}
		if !reflect.DeepEqual(got.GroupModelRules, tt.want) {
			t.Fatalf("%s: rules = %+v, want %+v", tt.name, got.GroupModelRules, tt.want)
		}
	}

	// The rules hold on the whole row: a PATCH of one field is checked against the others.
	invalid := []struct {
		name      string
		id        int64
		patch     GroupPatch
		wantField string
	}{
		{"emptying a restricted group's mapping", g.ID, GroupPatch{ModelMapping: &empty}, "restrict_models"},
		{"restricting a group without mapping", plain.ID, GroupPatch{RestrictModels: &tr}, "restrict_models"},
		{"claude_code_only on openai", plain.ID, GroupPatch{ClaudeCodeOnly: &tr}, "claude_code_only"},
	}
	for _, tt := range invalid {
		var ie *InvalidError
		if _, err := st.UpdateGroup(ctx, tt.id, tt.patch); !errors.As(err, &ie) || ie.Field != tt.wantField {
			t.Errorf("%s: error = %v, want an InvalidError on %s", tt.name, err, tt.wantField)
		}
	}
	var ie *InvalidError
	_, err = st.CreateGroup(ctx, Group{Name: "bad", Platform: "openai", RateMultiplier: "1", Status: "active",
		GroupModelRules: GroupModelRules{ClaudeCodeOnly: true}})
	if !errors.As(err, &ie) || ie.Field != "claude_code_only" {
		t.Errorf("CreateGroup claude_code_only on openai: %v, want an InvalidError", err)
	}
	_, err = st.CreateGroup(ctx, Group{Name: "bad2", Platform: "anthropic", RateMultiplier: "1", Status: "active",
		GroupModelRules: GroupModelRules{RestrictModels: true}})
	if !errors.As(err, &ie) || ie.Field != "restrict_models" {
		t.Errorf("CreateGroup restricted without mapping: %v, want an InvalidError", err)
	}
}

// Admission reads the group's rules with the key; an empty mapping reads as "".
func TestGroupModelRulesReachKeyAuth(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	user := admSQL(t, st, `INSERT INTO users (name) VALUES ('u') RETURNING id`)
	g, err := st.CreateGroup(ctx, Group{Name: "g", Platform: "anthropic", RateMultiplier: "1", Status: "active"})
	if err != nil {
		t.Fatal(err)
	}
	admExec(t, st, `INSERT INTO api_keys (user_id, group_id, key_hash, key_prefix) VALUES ($1, $2, 'h-rules', 'sk-pg')`, user, g.ID)
	got, err := st.AuthenticateKey(ctx, "h-rules")
	if err != nil || got.GroupModelMapping != "" || got.RestrictModels || got.ClaudeCodeOnly {
		t.Fatalf("AuthenticateKey = %+v, %v; want no rules", got, err)
	}
	m, tr := map[string]string{"sonnet": "claude-sonnet-4-5"}, true
	if _, err := st.UpdateGroup(ctx, g.ID, GroupPatch{ModelMapping: &m, RestrictModels: &tr, ClaudeCodeOnly: &tr}); err != nil {
		t.Fatal(err)
	}
	got, err = st.AuthenticateKey(ctx, "h-rules")
	if err != nil || got.GroupModelMapping != `{"sonnet": "claude-sonnet-4-5"}` || !got.RestrictModels || !got.ClaudeCodeOnly {
		t.Fatalf("after PATCH: AuthenticateKey = %+v, %v", got, err)
	}
}
