package gateway

import (
	"encoding/json"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
)

// stubCatalogue stands for the model catalogue: a few current model names per platform.
type stubCatalogue map[string][]string

func (c stubCatalogue) Models(platform string) []string { return c[platform] }

var testCatalogue = stubCatalogue{
	"anthropic": {"claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5"},
	"openai":    {"gpt-5", "gpt-5-codex", "gpt-4o-mini"},
}

func newCatalogueEnv(t *testing.T, c admission.ModelCatalogue) *env {
	t.Helper()
	return newEnvConfig(t, Config{LeaseTTL: DefaultLeaseTTL, Wait: testWait, Catalogue: c})
}

// seedRuledFixture is a user with a key in a group of platform with the given model rules
// (set before the key's first admission: the key cache holds them for 2 s). The group serves
// unpriced models, so that made-up upstream names need no price.
func (e *env) seedRuledFixture(t *testing.T, platform, mapping string, restrict, claudeCodeOnly bool) fixture {
	t.Helper()
	f := e.seedFixture(t, 10, platform)
	e.exec(t, `UPDATE groups SET model_mapping = $2::jsonb, restrict_models = $3, claude_code_only = $4, allow_unpriced = true
		WHERE id = $1`, f.group, mapping, restrict, claudeCodeOnly)
	return f
}

// POST /internal/v1/models (contract B): the client body in both shapes, of the list or of
// one model; a bad key gets the admit-style 401 in the shape asked for.
func TestModelsEndpoint(t *testing.T) {
	t.Parallel()
	e := newCatalogueEnv(t, testCatalogue)
	f := e.seedRuledFixture(t, "anthropic", `{"sonnet":"claude-sonnet-4-5"}`, false, false)
	e.seedAccount(t, f.group, accountSeed{platform: "anthropic", mapping: `{"claude-sonnet-4-5":"","claude-opus-5":""}`})
	created := modelCreated.Unix()
	createdAt := modelCreated.Format("2006-01-02T15:04:05Z07:00")
	model := func(id string) map[string]any {
		return map[string]any{"id": id, "object": "model", "created": created, "owned_by": "poolgate"}
	}
	anthropicModel := func(id string) map[string]any {
		return map[string]any{"type": "model", "id": id, "display_name": id, "created_at": createdAt}
	}
	tests := []struct {
		name   string
		body   any
		status int
		reject string
		want   any
	}{
		{name: "openai shape", body: map[string]string{"api_key": f.key, "shape": "openai"}, status: 200,
			want: map[string]any{"object": "list", "data": []any{model("sonnet"), model("claude-opus-5"), model("claude-sonnet-4-5")}}},
		{name: "shape defaults to openai", body: map[string]string{"api_key": f.key}, status: 200,
			want: map[string]any{"object": "list", "data": []any{model("sonnet"), model("claude-opus-5"), model("claude-sonnet-4-5")}}},
		{name: "anthropic shape", body: map[string]string{"api_key": f.key, "shape": "anthropic"}, status: 200,
			want: map[string]any{"data": []any{anthropicModel("sonnet"), anthropicModel("claude-opus-5"), anthropicModel("claude-sonnet-4-5")},
				"has_more": false, "first_id": "sonnet", "last_id": "claude-sonnet-4-5"}},
		{name: "bad key, openai shape", body: map[string]string{"api_key": "sk-pg-nope", "shape": "openai"},
			status: 401, reject: admission.ReasonAuth,
			want: map[string]any{"error": map[string]any{"type": "authentication_error", "message": "Invalid API key"}}},
		{name: "bad key, anthropic shape", body: map[string]string{"api_key": "sk-pg-nope", "shape": "anthropic"},
			status: 401, reject: admission.ReasonAuth,
			want: map[string]any{"type": "error", "error": map[string]any{"type": "authentication_error", "message": "Invalid API key"}}},
		{name: "no key", body: map[string]string{"shape": "anthropic"}, status: 401, reject: admission.ReasonAuth,
			want: map[string]any{"type": "error", "error": map[string]any{"type": "authentication_error", "message": "Invalid API key"}}},
		{name: "one model, openai shape", body: map[string]string{"api_key": f.key, "id": "sonnet"}, status: 200, want: model("sonnet")},
		{name: "one model, anthropic shape", body: map[string]string{"api_key": f.key, "shape": "anthropic", "id": "claude-opus-5"},
			status: 200, want: anthropicModel("claude-opus-5")},
		{name: "a model the key cannot use, openai shape", body: map[string]string{"api_key": f.key, "id": "gpt-4o"},
			status: 404, reject: admission.ReasonModelNotFound,
			want: map[string]any{"error": map[string]any{"type": "invalid_request_error",
				"message": "The model `gpt-4o` does not exist or you do not have access to it.", "code": "model_not_found"}}},
		{name: "a model the key cannot use, anthropic shape", body: map[string]string{"api_key": f.key, "shape": "anthropic", "id": "gpt-4o"},
			status: 404, reject: admission.ReasonModelNotFound,
			want: map[string]any{"type": "error", "error": map[string]any{"type": "not_found_error", "message": "model: gpt-4o"}}},
		{name: "one model, bad key", body: map[string]string{"api_key": "sk-pg-nope", "id": "sonnet"},
			status: 401, reject: admission.ReasonAuth,
			want: map[string]any{"error": map[string]any{"type": "authentication_error", "message": "Invalid API key"}}},
		{name: "unknown shape", body: map[string]string{"api_key": f.key, "shape": "gemini"}, status: 400, reject: admission.ReasonInvalid,
			want: map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "Invalid shape"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.post(t, "/internal/v1/models", testSecret, tt.body)
			if res.status != tt.status || res.reject != tt.reject {
				t.Fatalf("got %d reject %q (%s), want %d %q", res.status, res.reject, res.body, tt.status, tt.reject)
			}
			var got any
			if err := json.Unmarshal(res.body, &got); err != nil {
				t.Fatalf("body %s: %v", res.body, err)
			}
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(tt.want)
			if string(g) != string(w) {
				t.Fatalf("body = %s\nwant   %s", g, w)
			}
		})
	}
	t.Run("empty anthropic list has null ids", func(t *testing.T) {
		other := e.seedRuledFixture(t, "anthropic", `{}`, false, false)
		res := e.post(t, "/internal/v1/models", testSecret, map[string]string{"api_key": other.key, "shape": "anthropic"})
		if res.status != 200 || string(res.body) != `{"data":[],"has_more":false,"first_id":null,"last_id":null}` {
			t.Fatalf("got %d %s", res.status, res.body)
		}
	})
	t.Run("plugin secret required", func(t *testing.T) {
		if res := e.post(t, "/internal/v1/models", "wrong", map[string]string{"api_key": f.key}); res.status != 401 {
			t.Fatalf("got %d %s, want 401", res.status, res.body)
		}
	})
}
