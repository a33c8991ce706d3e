package adminapi

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestGroupRulesAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var plain groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"plain","platform":"openai"}`, http.StatusCreated, &plain)
	if plain.ModelMapping == nil || len(plain.ModelMapping) != 0 || plain.RestrictModels || plain.ClaudeCodeOnly {
		t.Fatalf("defaults = %+v, want {} and both flags off", plain.groupRulesView)
	}
	// An empty mapping is shown as {}, never null.
	if _, raw := e.call(http.MethodGet, "/api/v1/admin/groups/"+itoa(plain.ID), nil); !strings.Contains(string(raw), `"model_mapping":{}`) {
		t.Errorf("group without mapping = %s, want \"model_mapping\":{}", raw)
	}

	var g groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"claude","platform":"anthropic",
		"model_mapping":{"sonnet":"claude-sonnet-4-5","claude-haiku*":"claude-haiku*"},"restrict_models":true,"claude_code_only":true}`,
		http.StatusCreated, &g)
	want := groupRulesView{ModelMapping: map[string]string{"sonnet": "claude-sonnet-4-5", "claude-haiku*": "claude-haiku*"},
		RestrictModels: true, ClaudeCodeOnly: true}
	if !reflect.DeepEqual(g.groupRulesView, want) {
		t.Fatalf("created = %+v, want %+v", g.groupRulesView, want)
	}
	path := "/api/v1/admin/groups/" + itoa(g.ID)
	tests := []struct {
		name string
		body string
		want groupRulesView
	}{
		{"absent fields are kept", `{"name":"claude2"}`, want},
		{"mapping replaced as a whole", `{"model_mapping":{"opus":"claude-opus-4-1"}}`,
			groupRulesView{ModelMapping: map[string]string{"opus": "claude-opus-4-1"}, RestrictModels: true, ClaudeCodeOnly: true}},
		{"flags off", `{"restrict_models":false,"claude_code_only":false}`,
			groupRulesView{ModelMapping: map[string]string{"opus": "claude-opus-4-1"}}},
		{"mapping cleared", `{"model_mapping":{}}`, groupRulesView{ModelMapping: map[string]string{}}},
	}
	for _, tt := range tests { // sequential: each PATCH builds on the previous one
		var got, read groupView
		e.mustCall(http.MethodPatch, path, tt.body, http.StatusOK, &got)
		e.mustCall(http.MethodGet, path, nil, http.StatusOK, &read)
		if !reflect.DeepEqual(got.groupRulesView, tt.want) || !reflect.DeepEqual(read.groupRulesView, tt.want) {
			t.Fatalf("%s: PATCH = %+v, GET = %+v, want %+v", tt.name, got.groupRulesView, read.groupRulesView, tt.want)
		}
	}
	var list listBody[groupView]
	e.mustCall(http.MethodGet, "/api/v1/admin/groups", nil, http.StatusOK, &list)
	if len(list.Items) != 2 || list.Items[1].ModelMapping == nil || list.Items[0].RestrictModels {
		t.Errorf("list = %+v", list.Items)
	}
}

func TestGroupRulesValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const (
		msgRestrict = "restrict_models: needs a non-empty model_mapping"
		msgClaude   = "claude_code_only: is only allowed on anthropic groups"
	)
	tests := []struct {
		name string
		body string
		msg  string
	}{
		{"mapping not an object", `"model_mapping":["a"]`, "model_mapping must be"},
		{"mapping value not a string", `"model_mapping":{"a":1}`, "model_mapping"},
		{"inner star", `"model_mapping":{"claude-*-4":"x"}`, "* is only allowed at the end"},
		{"empty target", `"model_mapping":{"sonnet":""}`, `model_mapping["sonnet"] must not be empty`},
		{"wildcard target other than the key", `"model_mapping":{"claude-*":"claude-sonnet-*"}`, "must be a model name without *"},
		{"bare star pass-through", `"model_mapping":{"*":"*"}`, "a pass-through wildcard needs a prefix"},
		{"restrict_models not a boolean", `"restrict_models":"yes"`, "restrict_models must be"},
		{"claude_code_only not a boolean", `"claude_code_only":1`, "claude_code_only must be"},
		{"restricted without mapping", `"restrict_models":true`, msgRestrict},
		{"restricted with an empty mapping", `"restrict_models":true,"model_mapping":{}`, msgRestrict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodPost, "/api/v1/admin/groups", `{"name":"x","platform":"anthropic",`+tt.body+`}`,
				http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
	e.wantError(http.MethodPost, "/api/v1/admin/groups", `{"name":"x","platform":"openai","claude_code_only":true}`,
		http.StatusBadRequest, "invalid_request_error", msgClaude)

	// A PATCH is checked against the group's stored fields.
	oa := e.createGroup("oa", "openai")
	e.wantError(http.MethodPatch, "/api/v1/admin/groups/"+itoa(oa), `{"claude_code_only":true}`,
		http.StatusBadRequest, "invalid_request_error", msgClaude)
	e.wantError(http.MethodPatch, "/api/v1/admin/groups/"+itoa(oa), `{"restrict_models":true}`,
		http.StatusBadRequest, "invalid_request_error", msgRestrict)
	var restricted groupView
	e.mustCall(http.MethodPatch, "/api/v1/admin/groups/"+itoa(oa), `{"restrict_models":true,"model_mapping":{"gpt-4o*":"gpt-4o*"}}`,
		http.StatusOK, &restricted)
	e.wantError(http.MethodPatch, "/api/v1/admin/groups/"+itoa(oa), `{"model_mapping":{}}`,
		http.StatusBadRequest, "invalid_request_error", msgRestrict)
	var got groupView
	e.mustCall(http.MethodGet, "/api/v1/admin/groups/"+itoa(oa), nil, http.StatusOK, &got)
	if !got.RestrictModels || got.ClaudeCodeOnly || !reflect.DeepEqual(got.ModelMapping, map[string]string{"gpt-4o*": "gpt-4o*"}) {
		t.Errorf("refused PATCHes changed the group: %+v", got.groupRulesView)
	}
}
