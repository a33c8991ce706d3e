package adminapi

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

func TestGroupFailoverAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var plain groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"plain","platform":"openai"}`, http.StatusCreated, &plain)
	if want := (groupFailoverView{ModelFallbacks: map[string]store.ModelFallback{}}); !reflect.DeepEqual(plain.groupFailoverView, want) {
		t.Fatalf("defaults = %+v, want every setting null and no fallbacks", plain.groupFailoverView)
	}
	if _, raw := e.call(http.MethodGet, "/api/v1/admin/groups/"+itoa(plain.ID), nil); !strings.Contains(string(raw), `"model_fallbacks":{}`) ||
		!strings.Contains(string(raw), `"response_header_timeout_ms":null`) {
		t.Errorf("group without failover settings = %s, want null settings and \"model_fallbacks\":{}", raw)
	}

	var g groupView
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"f","platform":"openai",
		"response_header_timeout_ms":120000,"hedge_after_ms":2000,"breaker_threshold":5,"breaker_window_ms":30000,
		"breaker_cooldown_ms":1000,
		"model_fallbacks":{"gpt-4o-mini":{"context_length_exceeded":["gpt-4.1"],"exhausted":["gpt-4o"]},"*":{"model_not_found":["gpt-4o"]}}}`,
		http.StatusCreated, &g)
	i := func(v int64) *int64 { return &v }
	want := groupFailoverView{ResponseHeaderTimeoutMs: i(120000), HedgeAfterMs: i(2000), BreakerThreshold: i(5),
		BreakerWindowMs: i(30000), BreakerCooldownMs: i(1000),
		ModelFallbacks: map[string]store.ModelFallback{
			"gpt-4o-mini": {ContextLengthExceeded: []string{"gpt-4.1"}, Exhausted: []string{"gpt-4o"}},
			"*":           {ModelNotFound: []string{"gpt-4o"}},
		}}
	if !reflect.DeepEqual(g.groupFailoverView, want) {
		t.Fatalf("created = %+v, want %+v", g.groupFailoverView, want)
	}
	path := "/api/v1/admin/groups/" + itoa(g.ID)
	steps := []struct {
		name string
		body string
		edit func(v *groupFailoverView)
	}{
		{"absent fields are kept", `{"name":"f2"}`, func(*groupFailoverView) {}},
		{"off is 0", `{"response_header_timeout_ms":0,"hedge_after_ms":0}`, func(v *groupFailoverView) {
			v.ResponseHeaderTimeoutMs, v.HedgeAfterMs = i(0), i(0)
		}},
		{"null is the default", `{"breaker_threshold":null,"breaker_window_ms":null,"breaker_cooldown_ms":null}`, func(v *groupFailoverView) {
			v.BreakerThreshold, v.BreakerWindowMs, v.BreakerCooldownMs = nil, nil, nil
		}},
		{"fallbacks replaced as a whole", `{"model_fallbacks":{"a":{"exhausted":["b","c"]}}}`, func(v *groupFailoverView) {
			v.ModelFallbacks = map[string]store.ModelFallback{"a": {Exhausted: []string{"b", "c"}}}
		}},
		{"fallbacks cleared by null", `{"model_fallbacks":null}`, func(v *groupFailoverView) {
			v.ModelFallbacks = map[string]store.ModelFallback{}
		}},
	}
	for _, st := range steps { // sequential: each PATCH builds on the previous one
		st.edit(&want)
		var got, read groupView
		e.mustCall(http.MethodPatch, path, st.body, http.StatusOK, &got)
		e.mustCall(http.MethodGet, path, nil, http.StatusOK, &read)
		if !reflect.DeepEqual(got.groupFailoverView, want) || !reflect.DeepEqual(read.groupFailoverView, want) {
			t.Fatalf("%s: PATCH = %+v, GET = %+v, want %+v", st.name, got.groupFailoverView, read.groupFailoverView, want)
		}
	}
}

func TestGroupFailoverValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	many := `"model_fallbacks":{"a":{"exhausted":["1","2","3","4","5","6","7","8","9"]}}`
	tests := []struct {
		name string
		body string
		msg  string
	}{
		{"header timeout negative", `"response_header_timeout_ms":-1`, "response_header_timeout_ms must be between 0 (off) and 1800000"},
		{"header timeout over 30 min", `"response_header_timeout_ms":1800001`, "response_header_timeout_ms must be between"},
		{"hedge not a number", `"hedge_after_ms":"2s"`, "hedge_after_ms must be an integer number of milliseconds"},
		{"threshold 0", `"breaker_threshold":0`, "breaker_threshold must be an integer from 1 to 1000"},
		{"window too short", `"breaker_window_ms":999`, "breaker_window_ms must be an integer from 1000 to 86400000"},
		{"cooldown over the cap", `"breaker_cooldown_ms":600001`, "breaker_cooldown_ms must be an integer from 100 to 600000"},
		{"fallbacks not an object", `"model_fallbacks":["gpt-4o"]`, "model_fallbacks must be an object"},
		{"unknown cause", `"model_fallbacks":{"a":{"too_slow":["b"]}}`, `model_fallbacks["a"] must be an object of`},
		{"list not of strings", `"model_fallbacks":{"a":{"exhausted":[1]}}`, `model_fallbacks["a"] must be an object of`},
		{"wildcard in a list", `"model_fallbacks":{"a":{"exhausted":["*"]}}`, `must be a model name without *`},
		{"prefix key", `"model_fallbacks":{"gpt-*":{"exhausted":["b"]}}`, `must be a model name without *`},
		{"empty model", `"model_fallbacks":{"a":{"exhausted":[""]}}`, "must not be empty"},
		{"too many models", many, "each list may name at most 8 models"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(http.MethodPost, "/api/v1/admin/groups", `{"name":"x","platform":"openai",`+tt.body+`}`,
				http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
}
