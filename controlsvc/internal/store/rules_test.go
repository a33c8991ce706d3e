package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestPassthroughRulesRoundTrip(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()

	code, msg := 503, "Upstream quota exhausted"
	in := PassthroughRule{
		Name: "quota", Enabled: true, Priority: 5, ErrorCodes: []int{500, 503}, Keywords: []string{"Quota"},
		MatchMode: "all", Platforms: []string{"openai"}, PassthroughCode: false, ResponseCode: &code,
		PassthroughBody: false, CustomMessage: &msg, SkipMonitoring: true, Description: "d",
	}
	r, err := st.CreatePassthroughRule(ctx, in)
	if err != nil {
		t.Fatalf("CreatePassthroughRule: %v", err)
	}
	if r.ID == 0 || r.CreatedAt.IsZero() || *r.ResponseCode != 503 || *r.CustomMessage != msg ||
		!reflect.DeepEqual(r.ErrorCodes, []int{500, 503}) || !reflect.DeepEqual(r.Keywords, []string{"Quota"}) ||
		!reflect.DeepEqual(r.Platforms, []string{"openai"}) || r.MatchMode != "all" || !r.SkipMonitoring {
		t.Fatalf("created = %+v", r)
	}
	got, err := st.GetPassthroughRule(ctx, r.ID)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("GetPassthroughRule() = %+v, %v; want %+v", got, err, r)
	}

	// Nil lists are stored as empty arrays; nil pointers stay NULL.
	second, err := st.CreatePassthroughRule(ctx, PassthroughRule{Name: "kw", Enabled: true, Priority: 1,
		Keywords: []string{"x"}, MatchMode: "any", PassthroughCode: true, PassthroughBody: true})
	if err != nil {
		t.Fatal(err)
	}
	if second.ErrorCodes == nil || len(second.ErrorCodes) != 0 || second.Platforms == nil || second.ResponseCode != nil || second.CustomMessage != nil {
		t.Fatalf("second = %+v", second)
	}
	list, err := st.ListPassthroughRules(ctx)
	if err != nil || len(list) != 2 || list[0].ID != second.ID || list[1].ID != r.ID {
		t.Fatalf("ListPassthroughRules() = %+v, %v; want priority order", list, err)
	}

	updated, err := st.UpdatePassthroughRule(ctx, r.ID, func(cur *PassthroughRule) error {
		cur.Enabled = false
		cur.Keywords = append(cur.Keywords, "limit")
		return nil
	})
	if err != nil || updated.Enabled || len(updated.Keywords) != 2 || updated.UpdatedAt.Before(r.UpdatedAt) {
		t.Fatalf("UpdatePassthroughRule() = %+v, %v", updated, err)
	}
	refuse := errors.New("refused")
	if _, err := st.UpdatePassthroughRule(ctx, r.ID, func(cur *PassthroughRule) error {
		cur.Name = "never stored"
		return refuse
	}); !errors.Is(err, refuse) {
		t.Fatalf("UpdatePassthroughRule with a refusing change: %v", err)
	}
	if got, _ := st.GetPassthroughRule(ctx, r.ID); got.Name != "quota" {
		t.Errorf("a refused change was stored: name %q", got.Name)
	}

	if err := st.DeletePassthroughRule(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	var nf *NotFoundError
	if _, err := st.GetPassthroughRule(ctx, r.ID); !errors.As(err, &nf) {
		t.Errorf("Get after delete: %v, want NotFoundError", err)
	}
	if err := st.DeletePassthroughRule(ctx, r.ID); !errors.As(err, &nf) {
		t.Errorf("second delete: %v, want NotFoundError", err)
	}
	if _, err := st.UpdatePassthroughRule(ctx, 999999, func(*PassthroughRule) error { return nil }); !errors.As(err, &nf) {
		t.Errorf("update of a missing rule: %v, want NotFoundError", err)
	}
}

func TestPassthroughRuleConstraints(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	tests := []struct {
		name string
		give PassthroughRule
	}{
		{"no code and no keyword", PassthroughRule{Name: "a", MatchMode: "any", PassthroughCode: true, PassthroughBody: true}},
		{"status without response_code", PassthroughRule{Name: "a", ErrorCodes: []int{500}, MatchMode: "any", PassthroughBody: true}},
		{"body without custom_message", PassthroughRule{Name: "a", ErrorCodes: []int{500}, MatchMode: "any", PassthroughCode: true}},
		{"bad match mode", PassthroughRule{Name: "a", ErrorCodes: []int{500}, MatchMode: "some", PassthroughCode: true, PassthroughBody: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := st.CreatePassthroughRule(ctx, tt.give); err == nil {
				t.Fatal("stored a rule the schema should refuse")
			}
		})
	}
}
