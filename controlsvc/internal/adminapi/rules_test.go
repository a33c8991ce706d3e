package adminapi

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/gorilla/mux"

	"github.com/poolgate/poolgate/controlsvc/internal/rules"
)

const rulesPath = "/api/v1/admin/error-passthrough-rules"

// newRulesEnv is an env whose API tells a real rule cache (on the env's database and
// Redis) about every write.
func newRulesEnv(t *testing.T) (*env, *rules.Cache) {
	t.Helper()
	e := newEnv(t)
	cache := rules.NewCache(e.st, e.rdb, 0, nil)
	api := New(Options{Store: e.st, Slots: e.slots, AdminToken: testToken, Log: slog.New(slog.NewJSONHandler(e.logs, nil)), Rules: cache})
	r := mux.NewRouter()
	api.Register(r)
	e.srv = httptest.NewServer(r)
	t.Cleanup(e.srv.Close)
	return e, cache
}

func TestRulesCRUD(t *testing.T) {
	t.Parallel()
	e, cache := newRulesEnv(t)
	quota500 := rules.Input{Platform: "openai", Status: 500, Body: []byte(`{"error":{"message":"Quota exceeded"}}`)}

	var def ruleView
	e.mustCall(http.MethodPost, rulesPath, `{"name":"  bad request  ","error_codes":[400]}`, http.StatusCreated, &def)
	want := ruleView{ID: def.ID, Name: "bad request", Enabled: true, Priority: 0, ErrorCodes: []int{400}, Keywords: []string{},
		MatchMode: "any", Platforms: []string{}, PassthroughCode: true, PassthroughBody: true,
		CreatedAt: def.CreatedAt, UpdatedAt: def.UpdatedAt}
	if def.ID == 0 || def.CreatedAt.IsZero() || !reflect.DeepEqual(def, want) {
		t.Fatalf("created with defaults = %+v, want %+v", def, want)
	}

	var q ruleView
	e.mustCall(http.MethodPost, rulesPath, map[string]any{
		"name": "quota", "priority": -1, "error_codes": []int{500, 500, 502}, "keywords": []string{" Quota "},
		"match_mode": "all", "platforms": []string{"openai", "openai"}, "passthrough_code": false, "response_code": 503,
		"passthrough_body": false, "custom_message": "Upstream quota exhausted", "skip_monitoring": true,
		"description": "quota errors",
	}, http.StatusCreated, &q)
	if q.Priority != -1 || !reflect.DeepEqual(q.ErrorCodes, []int{500, 502}) || !reflect.DeepEqual(q.Keywords, []string{"Quota"}) ||
		q.MatchMode != "all" || !reflect.DeepEqual(q.Platforms, []string{"openai"}) || q.PassthroughCode || *q.ResponseCode != 503 ||
		q.PassthroughBody || *q.CustomMessage != "Upstream quota exhausted" || !q.SkipMonitoring || q.Description != "quota errors" {
		t.Fatalf("created = %+v", q)
	}
	// The write reached the cache: the quota rule now matches.
	if got, ok := cache.Rules().Match(quota500); !ok || got.RuleID != q.ID || got.Status != 503 || got.Message != "Upstream quota exhausted" {
		t.Fatalf("cache after create: %+v, %v", got, ok)
	}

	var got ruleView
	e.mustCall(http.MethodGet, rulesPath+"/"+itoa(q.ID), nil, http.StatusOK, &got)
	if !reflect.DeepEqual(got, q) {
		t.Errorf("GET = %+v, want %+v", got, q)
	}
	var list listBody[ruleView]
	e.mustCall(http.MethodGet, rulesPath, nil, http.StatusOK, &list)
	if len(list.Items) != 2 || list.Items[0].ID != q.ID || list.Items[1].ID != def.ID {
		t.Errorf("list is not in evaluation order: %+v", list.Items)
	}

	// PATCH changes only what it names, and the cache follows.
	var p ruleView
	e.mustCall(http.MethodPatch, rulesPath+"/"+itoa(q.ID), `{"enabled":false,"keywords":["limit"]}`, http.StatusOK, &p)
	if p.Enabled || !reflect.DeepEqual(p.Keywords, []string{"limit"}) || p.Name != "quota" || *p.ResponseCode != 503 {
		t.Fatalf("patched = %+v", p)
	}
	if got, ok := cache.Rules().Match(quota500); ok {
		t.Fatalf("a disabled rule still matches: %+v", got)
	}
	e.mustCall(http.MethodPatch, rulesPath+"/"+itoa(q.ID), `{"enabled":true,"passthrough_code":true}`, http.StatusOK, &p)
	// A PATCH is judged by the rule it produces.
	e.wantError(http.MethodPatch, rulesPath+"/"+itoa(def.ID), `{"passthrough_body":false}`,
		http.StatusBadRequest, "invalid_request_error", "custom_message is required when passthrough_body is false")
	e.wantError(http.MethodPatch, rulesPath+"/"+itoa(def.ID), `{"error_codes":[]}`,
		http.StatusBadRequest, "invalid_request_error", "at least one error code or keyword")
	e.mustCall(http.MethodGet, rulesPath+"/"+itoa(def.ID), nil, http.StatusOK, &got)
	if !reflect.DeepEqual(got, def) {
		t.Errorf("a refused PATCH changed the rule: %+v", got)
	}

	e.mustCall(http.MethodDelete, rulesPath+"/"+itoa(def.ID), nil, http.StatusNoContent, nil)
	e.wantError(http.MethodGet, rulesPath+"/"+itoa(def.ID), nil, http.StatusNotFound, "not_found_error", "error passthrough rule")
	e.wantError(http.MethodDelete, rulesPath+"/"+itoa(def.ID), nil, http.StatusNotFound, "not_found_error", "not found")
	e.wantError(http.MethodPatch, rulesPath+"/999999", `{"enabled":false}`, http.StatusNotFound, "not_found_error", "not found")
	e.mustCall(http.MethodDelete, rulesPath+"/"+itoa(q.ID), nil, http.StatusNoContent, nil)
	if n := cache.Rules().Len(); n != 0 {
		t.Errorf("cache holds %d rules after deleting all", n)
	}
	e.wantError(http.MethodPut, rulesPath+"/"+itoa(q.ID), `{}`, http.StatusMethodNotAllowed, "invalid_request_error", "not allowed")
}

func TestRulesValidation(t *testing.T) {
	t.Parallel()
	e, _ := newRulesEnv(t)
	tests := []struct {
		name string
		body string
		msg  string
	}{
		{"name missing", `{"error_codes":[500]}`, "name is required"},
		{"name blank", `{"name":" ","error_codes":[500]}`, "name must not be empty"},
		{"no code or keyword", `{"name":"a"}`, "error_codes or keywords: a rule needs at least one"},
		{"empty lists", `{"name":"a","error_codes":[],"keywords":[]}`, "at least one error code or keyword"},
		{"code out of range", `{"name":"a","error_codes":[700]}`, "error_codes must hold HTTP statuses between 100 and 599, got 700"},
		{"code not an integer", `{"name":"a","error_codes":["500"]}`, "error_codes must be an integer"},
		{"empty keyword", `{"name":"a","keywords":["quota","  "]}`, "keywords must not contain empty strings"},
		{"bad match mode", `{"name":"a","error_codes":[500],"match_mode":"some"}`, "match_mode must be one of any, all"},
		{"bad platform", `{"name":"a","error_codes":[500],"platforms":["gemini"]}`, "platforms entries must be one of openai, anthropic"},
		{"response_code missing", `{"name":"a","error_codes":[500],"passthrough_code":false}`, "response_code is required when passthrough_code is false"},
		{"response_code out of range", `{"name":"a","error_codes":[500],"passthrough_code":false,"response_code":99}`, "response_code must be an HTTP status between 100 and 599"},
		{"custom_message missing", `{"name":"a","error_codes":[500],"passthrough_body":false}`, "custom_message is required when passthrough_body is false"},
		{"custom_message blank", `{"name":"a","error_codes":[500],"passthrough_body":false,"custom_message":" "}`, "custom_message must not be empty"},
		{"unknown field", `{"name":"a","error_codes":[500],"status_code":503}`, `unknown field "status_code"`},
		{"enabled not a boolean", `{"name":"a","error_codes":[500],"enabled":"yes"}`, "enabled must be a boolean"},
		{"not an object", `[1]`, "request body must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodPost, rulesPath, tt.body, http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
	var list listBody[ruleView]
	e.mustCall(http.MethodGet, rulesPath, nil, http.StatusOK, &list)
	if len(list.Items) != 0 {
		t.Errorf("refused rules were stored: %+v", list.Items)
	}
	if status, _ := e.callWithToken(http.MethodGet, rulesPath, nil, ""); status != http.StatusUnauthorized {
		t.Errorf("GET without a token = %d, want 401", status)
	}
}

// Compile-time guard: the rule cache is what the API notifies.
var _ ChangeNotifier = (*rules.Cache)(nil)
