package httpapi

import (
	"net/http"
	"testing"
)

func TestGroupsCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var g groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"default","platform":"openai","rate_multiplier":1.5}`, http.StatusCreated, &g)
	if g.ID == 0 || g.Name != "default" || g.Platform != "openai" || g.RateMultiplier != "1.5" || g.Status != "active" {
		t.Fatalf("created = %+v", g)
	}
	var def groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"claude","platform":"anthropic"}`, http.StatusCreated, &def)
	if def.RateMultiplier != "1" {
		t.Errorf("default rate_multiplier = %s, want 1", def.RateMultiplier)
	}
	var got groupView
	e.mustCall(http.MethodGet, "/api/v1/admin/groups/"+itoa(g.ID), nil, http.StatusOK, &got)
	if got != g {
		t.Errorf("GET = %+v, want %+v", got, g)
	}
	var list listBody[groupView]
	e.mustCall(http.MethodGet, "/api/v1/admin/groups", nil, http.StatusOK, &list)
	if len(list.Items) != 2 || list.Items[0] != g || list.Items[1] != def {
		t.Errorf("list = %+v", list.Items)
	}
	e.wantError(http.MethodPost, "/api/v1/admin/groups", `{"name":"default","platform":"anthropic"}`,
		http.StatusConflict, "conflict_error", `a group named "default" already exists`)
	e.wantError(http.MethodGet, "/api/v1/admin/groups/404", nil, http.StatusNotFound, "not_found_error", "group 404 not found")
}

func TestGroupsValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name string
		body string
		msg  string
	}{
		{"name missing", `{"platform":"openai"}`, "name is required"},
		{"platform missing", `{"name":"a"}`, "platform is required"},
		{"platform unknown", `{"name":"a","platform":"gemini"}`, "platform must be one of openai, anthropic"},
		{"platform wrong case", `{"name":"a","platform":"OpenAI"}`, "platform must be one of"},
		{"rate negative", `{"name":"a","platform":"openai","rate_multiplier":-0.5}`, "rate_multiplier must be at least 0"},
		{"rate too precise", `{"name":"a","platform":"openai","rate_multiplier":1.0000001}`, "rate_multiplier must have at most 6 decimal places"},
		{"rate too large", `{"name":"a","platform":"openai","rate_multiplier":1000000}`, "below 1000000"},
		{"rate string", `{"name":"a","platform":"openai","rate_multiplier":"fast"}`, "rate_multiplier must be a number"},
		{"status unknown", `{"name":"a","platform":"openai","status":"on"}`, "status must be one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodPost, "/api/v1/admin/groups", tt.body, http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
	var g groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"edge","platform":"openai","rate_multiplier":999999.999999}`, http.StatusCreated, &g)
	if g.RateMultiplier != "999999.999999" {
		t.Errorf("rate_multiplier = %s, want 999999.999999 exactly", g.RateMultiplier)
	}
}
