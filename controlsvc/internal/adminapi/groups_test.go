package adminapi

import (
	"net/http"
	"reflect"
	"strings"
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
	if !reflect.DeepEqual(got, g) {
		t.Errorf("GET = %+v, want %+v", got, g)
	}
	var list listBody[groupView]
	e.mustCall(http.MethodGet, "/api/v1/admin/groups", nil, http.StatusOK, &list)
	if len(list.Items) != 2 || !reflect.DeepEqual(list.Items[0], g) || !reflect.DeepEqual(list.Items[1], def) {
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

// msText renders a nullable millisecond field for messages.
func msText(v *int64) string {
	if v == nil {
		return "null"
	}
	return itoa(*v)
}

func TestGroupTimeoutsAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var g groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups",
		`{"name":"slow","platform":"openai","first_token_timeout_ms":500,"stream_idle_timeout_ms":null}`, http.StatusCreated, &g)
	if msText(g.FirstTokenTimeoutMs) != "500" || g.StreamIdleTimeoutMs != nil {
		t.Fatalf("created timeouts = %s, %s; want 500, null", msText(g.FirstTokenTimeoutMs), msText(g.StreamIdleTimeoutMs))
	}
	// Absent fields are shown as null: the gateway's default.
	_, raw := e.call(http.MethodGet, "/api/v1/admin/groups/"+itoa(e.createGroup("plain", "openai")), nil)
	if !strings.Contains(string(raw), `"first_token_timeout_ms":null`) || !strings.Contains(string(raw), `"stream_idle_timeout_ms":null`) {
		t.Errorf("group without timeouts = %s, want both null", raw)
	}

	path := "/api/v1/admin/groups/" + itoa(g.ID)
	tests := []struct {
		name                string
		body                string
		wantFirst, wantIdle string
	}{
		{"absent fields are kept", `{"rate_multiplier":2}`, "500", "null"},
		{"set idle", `{"stream_idle_timeout_ms":1000}`, "500", "1000"},
		{"0 turns first token off", `{"first_token_timeout_ms":0}`, "0", "1000"},
		{"null restores the default", `{"first_token_timeout_ms":null,"stream_idle_timeout_ms":null}`, "null", "null"},
		{"maximum", `{"stream_idle_timeout_ms":1800000}`, "null", "1800000"},
	}
	for _, tt := range tests { // sequential: each case patches the previous result
		var got groupView
		e.mustCall(http.MethodPatch, path, tt.body, http.StatusOK, &got)
		if msText(got.FirstTokenTimeoutMs) != tt.wantFirst || msText(got.StreamIdleTimeoutMs) != tt.wantIdle {
			t.Fatalf("%s: PATCH %s = %s, %s; want %s, %s", tt.name, tt.body,
				msText(got.FirstTokenTimeoutMs), msText(got.StreamIdleTimeoutMs), tt.wantFirst, tt.wantIdle)
		}
		var read groupView
		e.mustCall(http.MethodGet, path, nil, http.StatusOK, &read)
		if msText(read.FirstTokenTimeoutMs) != tt.wantFirst || msText(read.StreamIdleTimeoutMs) != tt.wantIdle {
			t.Fatalf("%s: GET after PATCH = %+v", tt.name, read)
		}
	}
	var got groupView
	e.mustCall(http.MethodGet, path, nil, http.StatusOK, &got)
	if got.RateMultiplier != "2" || got.Name != "slow" || got.Platform != "openai" || got.Status != "active" {
		t.Errorf("other fields after the PATCHes = %+v", got)
	}
}

func TestGroupTimeoutsValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const rangeMsg = "must be between 0 (off) and 1800000 (30 minutes), or null for the gateway's default"
	const typeMsg = "must be an integer number of milliseconds, or null for the gateway's default"
	tests := []struct {
		name  string
		field string
		value string
		msg   string
	}{
		{"negative first token", "first_token_timeout_ms", "-1", "first_token_timeout_ms " + rangeMsg},
		{"negative idle", "stream_idle_timeout_ms", "-5", "stream_idle_timeout_ms " + rangeMsg},
		{"too large", "stream_idle_timeout_ms", "1800001", "stream_idle_timeout_ms " + rangeMsg},
		{"fraction", "first_token_timeout_ms", "1.5", "first_token_timeout_ms " + typeMsg},
		{"string", "first_token_timeout_ms", `"5s"`, "first_token_timeout_ms " + typeMsg},
		{"huge", "stream_idle_timeout_ms", "1e30", "stream_idle_timeout_ms " + typeMsg},
		{"object", "stream_idle_timeout_ms", "{}", "stream_idle_timeout_ms " + typeMsg},
	}
	id := e.createGroup("target", "openai")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodPost, "/api/v1/admin/groups",
				`{"name":"x","platform":"openai","`+tt.field+`":`+tt.value+`}`, http.StatusBadRequest, "invalid_request_error", tt.msg)
			e.wantError(http.MethodPatch, "/api/v1/admin/groups/"+itoa(id),
				`{"`+tt.field+`":`+tt.value+`}`, http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
	var got groupView
	e.mustCall(http.MethodGet, "/api/v1/admin/groups/"+itoa(id), nil, http.StatusOK, &got)
	if got.FirstTokenTimeoutMs != nil || got.StreamIdleTimeoutMs != nil {
		t.Errorf("a refused PATCH changed the group: %+v", got)
	}
}

func TestPatchGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.createGroup("one", "openai")
	e.createGroup("two", "openai")
	path := "/api/v1/admin/groups/" + itoa(id)

	var got groupView
	e.mustCall(http.MethodPatch, path, `{"name":" renamed ","rate_multiplier":0.25,"status":"disabled"}`, http.StatusOK, &got)
	if got.Name != "renamed" || got.RateMultiplier != "0.25" || got.Status != "disabled" || got.Platform != "openai" {
		t.Fatalf("PATCH = %+v", got)
	}
	e.wantError(http.MethodPatch, path, `{"platform":"anthropic"}`, http.StatusBadRequest, "invalid_request_error",
		"platform cannot be changed")
	e.wantError(http.MethodPatch, path, `{"name":"two"}`, http.StatusConflict, "conflict_error", `a group named "two" already exists`)
	e.wantError(http.MethodPatch, path, `{"name":""}`, http.StatusBadRequest, "invalid_request_error", "name must not be empty")
	e.wantError(http.MethodPatch, path, `{"status":"paused"}`, http.StatusBadRequest, "invalid_request_error", "status must be one of")
	e.wantError(http.MethodPatch, path, `{"rate_multiplier":-1}`, http.StatusBadRequest, "invalid_request_error", "rate_multiplier must be at least 0")
	e.wantError(http.MethodPatch, path, `{"first_token_timout_ms":5}`, http.StatusBadRequest, "invalid_request_error", "unknown field")
	e.wantError(http.MethodPatch, "/api/v1/admin/groups/424242", `{}`, http.StatusNotFound, "not_found_error", "group 424242 not found")
}
