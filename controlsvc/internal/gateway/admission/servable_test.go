package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"

	"github.com/poolgate/poolgate/plugin/wire"
)

// stubCatalogue stands for the model catalogue (contract D) until it is wired: a few current
// model names per platform.
type stubCatalogue map[string][]string

func (c stubCatalogue) Models(platform string) []string { return c[platform] }

var testCatalogue = stubCatalogue{
	"anthropic": {"claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5"},
	"openai":    {"gpt-5", "gpt-5-codex", "gpt-4o-mini"},
}

func newCatalogueEnv(t *testing.T, c ModelCatalogue) *env {
	t.Helper()
	return newEnvConfig(t, Config{Wait: testWait, Catalogue: c})
}

// servableOf is the servable models of a key, through the key cache as admission reads it.
func (e *env) servableOf(t *testing.T, key string) []string {
	t.Helper()
	got, _, ok, err := e.svc.ServableModels(context.Background(), key)
	if err != nil || !ok {
		t.Fatalf("ServableModels: %v %v", ok, err)
	}
	return got
}

func TestServableModels(t *testing.T) {
	t.Parallel()
	e := newCatalogueEnv(t, testCatalogue)
	type acc struct{ platform, mapping string }
	tests := []struct {
		name     string
		platform string
		mapping  string // the group's
		restrict bool
		accounts []acc
		want     []string
	}{
		{name: "empty mappings: the catalogue of the platform", platform: "anthropic",
			accounts: []acc{{"anthropic", `{}`}},
			want:     []string{"claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4-5"}},
		{name: "a model an account lists comes before the catalogue", platform: "anthropic",
			accounts: []acc{{"anthropic", `{"claude-opus-5":"claude-opus-5"}`}, {"anthropic", `{}`}},
			want:     []string{"claude-opus-5", "claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4-5"}},
		{name: "group mapping keys first, its wildcard is no name", platform: "anthropic",
			mapping:  `{"sonnet":"claude-sonnet-4-5","claude-*":"claude-*"}`,
			accounts: []acc{{"anthropic", `{}`}},
			want:     []string{"sonnet", "claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4-5"}},
		{name: "restrict_models keeps what the group's mapping names", platform: "anthropic",
			mapping: `{"sonnet":"claude-sonnet-4-5"}`, restrict: true,
			accounts: []acc{{"anthropic", `{"claude-opus-5":""}`}, {"anthropic", `{}`}},
			want:     []string{"sonnet"}},
		{name: "restrict_models with a family", platform: "anthropic",
			mapping: `{"claude-haiku*":"claude-haiku*"}`, restrict: true,
			accounts: []acc{{"anthropic", `{}`}},
			want:     []string{"claude-haiku-4-5"}},
		{name: "accounts that pass one family through", platform: "anthropic",
			accounts: []acc{{"anthropic", `{"claude-haiku*":"claude-haiku*"}`}},
			want:     []string{"claude-haiku-4-5"}},
		{name: "a group name no account serves is left out", platform: "anthropic",
			mapping:  `{"sonnet":"claude-3-7-sonnet"}`,
			accounts: []acc{{"anthropic", `{"claude-sonnet-4-5":""}`}},
			want:     []string{"claude-sonnet-4-5"}},
		{name: "no accounts: nothing", platform: "anthropic", mapping: `{"sonnet":"claude-sonnet-4-5"}`, want: []string{}},
		{name: "openai group", platform: "openai",
			accounts: []acc{{"openai", `{}`}, {"openai", `{"o3":"o3-2025-04-16"}`}},
			want:     []string{"o3", "gpt-4o-mini", "gpt-5", "gpt-5-codex"}},
		{name: "accounts of another platform do not count", platform: "openai",
			accounts: []acc{{"anthropic", `{"claude-x":""}`}, {"openai", `{"gpt-5":""}`}},
			want:     []string{"gpt-5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mapping := tt.mapping
			if mapping == "" {
				mapping = `{}`
			}
			f := e.seedRuledFixture(t, tt.platform, mapping, tt.restrict, false)
			for _, a := range tt.accounts {
				e.seedAccount(t, f.group, accountSeed{platform: a.platform, mapping: a.mapping})
			}
			if got := e.servableOf(t, f.key); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("servableModels = %q, want %q", got, tt.want)
			}
		})
	}
}

// "Models a key can use": a model no name answers for is 404 model_not_found before any account is
// chosen, naming up to ten models the key can use; what some name answers for is served.
func TestModelNotFoundNamesServableModels(t *testing.T) {
	t.Parallel()
	e := newCatalogueEnv(t, testCatalogue)
	type lists = map[string][]string
	anthropicGroup := func(t *testing.T) (fixture, int64) {
		f := e.seedRuledFixture(t, "anthropic", `{}`, false, false)
		plain := e.seedAccount(t, f.group, accountSeed{platform: "anthropic"})
		e.seedAccount(t, f.group, accountSeed{platform: "anthropic", mapping: `{"claude-opus-5":"claude-opus-5"}`})
		return f, plain
	}
	const names = "claude-opus-5, claude-haiku-4-5, claude-opus-4-5, claude-sonnet-4-5"
	t.Run("gpt-4o-mini on an anthropic group with empty mappings", func(t *testing.T) {
		f, plain := anthropicGroup(t)
		res := e.admit(t, Request{APIKey: f.key, Model: "gpt-4o-mini", Path: AnthropicPath})
		wantBody(t, res, 404, ReasonModelNotFound, `{"type":"error","error":{"type":"not_found_error",
			"message":"Model \"gpt-4o-mini\" is not supported by any configured account in this group; models available to this API key: `+names+`"}}`)
		if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, plain); u != 0 || a != 0 {
			t.Fatalf("slots user=%d account=%d after the 404, want 0 and 0", u, a)
		}
		if n := e.queryInt(t, `SELECT count(*) FROM account_model_blocks b JOIN account_groups ag ON ag.account_id = b.account_id
			WHERE ag.group_id = $1`, f.group); n != 0 {
			t.Fatalf("%d model blocks after the 404, want none", n)
		}
		// The OpenAI shape on /v1/chat/completions.
		res = e.admit(t, Request{APIKey: f.key, Model: "gpt-4o-mini", Path: "/v1/chat/completions"})
		wantBody(t, res, 404, ReasonModelNotFound, `{"error":{"type":"model_not_found",
			"message":"Model \"gpt-4o-mini\" is not supported by any configured account in this group; models available to this API key: `+names+`"}}`)
	})
	t.Run("served: a model an account lists, a catalogue model, a family passed through", func(t *testing.T) {
		f, _ := anthropicGroup(t)
		e.seedAccount(t, f.group, accountSeed{platform: "anthropic", mapping: `{"claude-*":"claude-*"}`})
		for _, m := range []string{"claude-opus-5", "claude-sonnet-4-5", "claude-future-9"} {
			g := e.mustGrant(t, Request{APIKey: f.key, Model: m, Path: AnthropicPath})
			e.release(t, g)
		}
	})
	t.Run("the model_not_found fallback comes before the 404", func(t *testing.T) {
		f := e.seedRuledFixture(t, "anthropic", `{}`, false, false)
		e.seedAccount(t, f.group, accountSeed{platform: "anthropic"})
		e.setFallbacks(t, f.group, map[string]lists{"gpt-4o-mini": {"model_not_found": {"claude-haiku-4-5"}}})
		g := e.mustGrant(t, Request{APIKey: f.key, Model: "gpt-4o-mini", Path: AnthropicPath})
		e.release(t, g)
		if g.ServedModel != "claude-haiku-4-5" || g.UpstreamModel != "claude-haiku-4-5" {
			t.Fatalf("grant served %q upstream %q, want the fallback claude-haiku-4-5", g.ServedModel, g.UpstreamModel)
		}
	})
	t.Run("at most ten names", func(t *testing.T) {
		f := e.seedRuledFixture(t, "openai", `{}`, false, false)
		var m []string
		for i := range 12 {
			m = append(m, fmt.Sprintf(`"m-%02d":""`, i))
		}
		e.seedAccount(t, f.group, accountSeed{mapping: "{" + strings.Join(m, ",") + "}"})
		res := e.admit(t, Request{APIKey: f.key, Model: "nope"})
		var body wire.OpenAIError
		if err := json.Unmarshal(res.body, &body); err != nil || res.status != 404 {
			t.Fatalf("admit = %d %s", res.status, res.body)
		}
		want := `Model "nope" is not supported by any configured account in this group; models available to this API key: ` +
			"m-00, m-01, m-02, m-03, m-04, m-05, m-06, m-07, m-08, m-09 and 2 more (GET /v1/models)"
		if body.Error.Message != want {
			t.Fatalf("message = %q, want %q", body.Error.Message, want)
		}
	})
}

// Without a catalogue an empty mapping serves every model, as it did before the catalogue.
func TestNoCatalogueEmptyMappingServesAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := e.seedRuledFixture(t, "anthropic", `{}`, false, false)
	e.seedAccount(t, f.group, accountSeed{platform: "anthropic"})
	e.release(t, e.mustGrant(t, Request{APIKey: f.key, Model: "claude-anything", Path: AnthropicPath}))
	if got := e.servableOf(t, f.key); len(got) != 0 {
		t.Fatalf("servableModels = %q, want none (no names at all)", got)
	}
}
