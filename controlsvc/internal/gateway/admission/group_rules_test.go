package admission

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/slots"

	"github.com/poolgate/poolgate/plugin/wire"
)

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

// wantBody checks a refusal's status, reason and exact JSON body.
func wantBody(t *testing.T, res result, status int, reason, body string) {
	t.Helper()
	if res.status != status || res.reject != reason {
		t.Fatalf("got %d reject %q (%s), want %d reject %q", res.status, res.reject, res.body, status, reason)
	}
	var got, want any
	if err := json.Unmarshal(res.body, &got); err != nil {
		t.Fatalf("error body %s is not JSON: %v", res.body, err)
	}
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatalf("bad expectation %s: %v", body, err)
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Fatalf("body = %s, want %s", g, w)
	}
}

// The group's mapping applies first, the account's own to its result; upstream_model is the
// final name whenever either changed it.
func TestGroupMappingBeforeAccountMapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const groupMapping = `{"sonnet":"claude-sonnet-4-5","claude-haiku*":"claude-haiku*","claude-*":"claude-opus-4-1"}`
	tests := []struct {
		name           string
		accountMapping string
		model          string
		wantUpstream   string
	}{
		{"group rename only", `{}`, "sonnet", "claude-sonnet-4-5"},
		{"group rename, then the account's", `{"claude-sonnet-4-5":"claude-sonnet-4-5-20250929"}`, "sonnet", "claude-sonnet-4-5-20250929"},
		{"group prefix rename, then the account's wildcard", `{"claude-opus*":"claude-opus-4-1-20250805"}`, "claude-3-opus", "claude-opus-4-1-20250805"},
		{"group pass-through wildcard, account renames", `{"claude-haiku-4-5":"claude-haiku-4-5-20251001"}`, "claude-haiku-4-5", "claude-haiku-4-5-20251001"},
		{"group pass-through, account pass-through", `{}`, "claude-haiku-4-5", ""},
		{"model the group does not name passes unchanged", `{"gpt-4o":"gpt-4o-2024-08-06"}`, "gpt-4o", "gpt-4o-2024-08-06"},
		{"account maps the group's result back to the requested name", `{"claude-sonnet-4-5":"sonnet"}`, "sonnet", "sonnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedRuledFixture(t, "anthropic", groupMapping, false, false)
			acc := e.seedAccount(t, f.group, accountSeed{platform: "anthropic", mapping: tt.accountMapping})
			g := e.mustGrant(t, Request{APIKey: f.key, Model: tt.model, Path: AnthropicPath})
			e.release(t, g)
			if g.AccountID != acc || g.UpstreamModel != tt.wantUpstream {
				t.Fatalf("grant account %d upstream_model %q, want %d %q", g.AccountID, g.UpstreamModel, acc, tt.wantUpstream)
			}
		})
	}

	t.Run("the account's mapping never sees the requested name", func(t *testing.T) {
		f := e.seedRuledFixture(t, "anthropic", groupMapping, false, false)
		e.seedAccount(t, f.group, accountSeed{platform: "anthropic", mapping: `{"sonnet":"claude-3-7-sonnet"}`})
		res := e.admit(t, Request{APIKey: f.key, Model: "sonnet", Path: AnthropicPath})
		// The message names the model the client asked for.
		wantBody(t, res, 404, ReasonModelNotFound, `{"type":"error","error":{"type":"not_found_error",
			"message":"Model \"sonnet\" is not supported by any configured account in this group"}}`)
	})

	t.Run("a model_not_found failover blocks the model the account was sent", func(t *testing.T) {
		f := e.seedRuledFixture(t, "anthropic", groupMapping, false, false)
		first := e.seedAccount(t, f.group, accountSeed{platform: "anthropic", priority: 1,
			mapping: `{"claude-sonnet-4-5":"claude-sonnet-4-5-20250929"}`})
		second := e.seedAccount(t, f.group, accountSeed{platform: "anthropic", priority: 2})
		g := e.mustGrant(t, Request{RequestID: "req_rules_mnf", APIKey: f.key, Model: "sonnet", Path: AnthropicPath})
		if g.AccountID != first {
			t.Fatalf("first choice %d, want %d", g.AccountID, first)
		}
		again := e.failOver(t, f.key, "sonnet", g, failure{Status: 404, ErrorClass: "model_not_found"})
		e.release(t, again)
		if again.AccountID != second || again.UpstreamModel != "claude-sonnet-4-5" {
			t.Fatalf("after model_not_found: account %d upstream %q, want %d claude-sonnet-4-5", again.AccountID, again.UpstreamModel, second)
		}
		if d := e.blockedUntil(t, first, "claude-sonnet-4-5-20250929"); d < 29*time.Minute || d > 30*time.Minute {
			t.Fatalf("block lasts %v, want ≈ 30 min", d)
		}
	})
}

func TestGroupRuleRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const (
		restricted = `{"claude-sonnet-4*":"claude-sonnet-4*","sonnet":"claude-sonnet-4-5"}`
		msgCCO     = "This group is restricted to Claude Code clients (/v1/messages only)"
		msgRestr   = "The requested model is not available for this API key"
	)
	tests := []struct {
		name     string
		platform string
		mapping  string
		restrict bool
		cco      bool
		path     string
		model    string
		status   int
		reason   string
		body     string
	}{
		{name: "restricted, Messages", platform: "anthropic", mapping: restricted, restrict: true,
			path: AnthropicPath, model: "claude-opus-4-1", status: 503, reason: ReasonRestricted,
			body: `{"type":"error","error":{"type":"api_error","message":"` + msgRestr + `"}}`},
		{name: "restricted, Responses on anthropic", platform: "anthropic", mapping: restricted, restrict: true,
			path: "/v1/responses", model: "claude-opus-4-1", status: 503, reason: ReasonRestricted,
			body: `{"error":{"code":"api_error","message":"` + msgRestr + `"}}`},
		{name: "restricted, Chat on openai", platform: "openai", mapping: `{"gpt-4o":"gpt-4o"}`, restrict: true,
			path: "/v1/chat/completions", model: "gpt-4.1", status: 503, reason: ReasonRestricted,
			body: `{"error":{"type":"api_error","message":"` + msgRestr + `"}}`},
		{name: "claude_code_only, Responses", platform: "anthropic", mapping: `{}`, cco: true,
			path: "/v1/responses", model: "claude-sonnet-4", status: 403, reason: ReasonClaudeCodeOnly,
			body: `{"error":{"code":"permission_error","message":"` + msgCCO + `"}}`},
		{name: "claude_code_only, Responses alias", platform: "anthropic", mapping: `{}`, cco: true,
			path: "/openai/v1/responses", model: "claude-sonnet-4", status: 403, reason: ReasonClaudeCodeOnly,
			body: `{"error":{"code":"permission_error","message":"` + msgCCO + `"}}`},
		{name: "claude_code_only, Chat", platform: "anthropic", mapping: `{}`, cco: true,
			path: "/v1/chat/completions", model: "claude-sonnet-4", status: 403, reason: ReasonClaudeCodeOnly,
			body: `{"error":{"type":"permission_error","message":"` + msgCCO + `"}}`},
		{name: "claude_code_only before the model restriction", platform: "anthropic", mapping: restricted, restrict: true, cco: true,
			path: "/v1/responses", model: "claude-opus-4-1", status: 403, reason: ReasonClaudeCodeOnly,
			body: `{"error":{"code":"permission_error","message":"` + msgCCO + `"}}`},
		{name: "Messages on an openai group", platform: "openai", mapping: `{}`,
			path: AnthropicPath, model: "gpt-4o", status: 400, reason: ReasonPlatform,
			body: `{"type":"error","error":{"type":"invalid_request_error","message":"This endpoint requires an Anthropic group; this API key's group serves OpenAI models (use /v1/responses or /v1/chat/completions)"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedRuledFixture(t, tt.platform, tt.mapping, tt.restrict, tt.cco)
			acc := e.seedAccount(t, f.group, accountSeed{platform: tt.platform})
			res := e.admit(t, Request{APIKey: f.key, Model: tt.model, Path: tt.path})
			wantBody(t, res, tt.status, tt.reason, tt.body)
			if u, a := e.count(t, slots.KindUser, f.user), e.count(t, slots.KindAccount, acc); u != 0 || a != 0 {
				t.Fatalf("a refused admission holds slots: user %d account %d", u, a)
			}
		})
	}
}

func TestGroupRulesAllow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name         string
		platform     string
		mapping      string
		restrict     bool
		cco          bool
		path         string
		model        string
		wantConvert  string
		wantUpstream string
	}{
		{name: "claude_code_only serves Messages", platform: "anthropic", mapping: `{}`, cco: true,
			path: AnthropicPath, model: "claude-sonnet-4"},
		{name: "restricted: a named model", platform: "anthropic", mapping: `{"sonnet":"claude-sonnet-4-5"}`, restrict: true,
			path: AnthropicPath, model: "sonnet", wantUpstream: "claude-sonnet-4-5"},
		{name: "restricted: a model named by a pass-through wildcard", platform: "anthropic",
			mapping: `{"claude-sonnet-4*":"claude-sonnet-4*"}`, restrict: true, path: "/v1/responses", model: "claude-sonnet-4-5",
			wantConvert: "responses_to_messages"},
		{name: "Responses on anthropic converts", platform: "anthropic", mapping: `{}`,
			path: "/v1/responses", model: "claude-sonnet-4", wantConvert: "responses_to_messages"},
		{name: "Responses alias on anthropic converts", platform: "anthropic", mapping: `{}`,
			path: "/openai/v1/responses", model: "claude-sonnet-4", wantConvert: "responses_to_messages"},
		{name: "Responses compaction on anthropic converts", platform: "anthropic", mapping: `{}`,
			path: "/v1/responses/compact", model: "claude-sonnet-4", wantConvert: "responses_to_messages"},
		{name: "Responses compaction on openai passes through", platform: "openai", mapping: `{}`,
			path: "/v1/responses/compact", model: "gpt-4o"},
		{name: "Responses on openai passes through", platform: "openai", mapping: `{}`,
			path: "/v1/responses", model: "gpt-4o"},
		{name: "Chat on openai passes through", platform: "openai", mapping: `{}`,
			path: "/v1/chat/completions", model: "gpt-4o"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.seedRuledFixture(t, tt.platform, tt.mapping, tt.restrict, tt.cco)
			acc := e.seedAccount(t, f.group, accountSeed{platform: tt.platform, apiKey: "sk-up-rules"})
			g := e.mustGrant(t, Request{APIKey: f.key, Model: tt.model, Path: tt.path})
			e.release(t, g)
			if g.AccountID != acc || g.Convert != tt.wantConvert || g.UpstreamModel != tt.wantUpstream || g.Platform != tt.platform {
				t.Fatalf("grant = %+v, want account %d convert %q upstream %q", g, acc, tt.wantConvert, tt.wantUpstream)
			}
			// A converted request is sent to the Anthropic account with its credentials.
			if tt.platform == "anthropic" && (g.Headers["x-api-key"] != "sk-up-rules" || g.Headers["anthropic-version"] == "") {
				t.Fatalf("headers = %v, want the anthropic account's", g.Headers)
			}
		})
	}
	// The JSON omits convert on a pass-through.
	f := e.seedRuledFixture(t, "openai", `{}`, false, false)
	e.seedAccount(t, f.group, accountSeed{})
	res := e.admit(t, Request{APIKey: f.key, Model: "gpt-4o"})
	if res.status != http.StatusOK || bytes.Contains(res.body, []byte(`"convert"`)) {
		t.Fatalf("pass-through grant = %d %s, want 200 without convert", res.status, res.body)
	}
	var g wire.Grant
	if err := json.Unmarshal(res.body, &g); err != nil {
		t.Fatal(err)
	}
	e.release(t, g)
}

// No account on the first admission: Responses on an Anthropic group says "No available
// accounts" in its code envelope; the other paths keep the skeleton's wording.
func TestNoAccountWordingPerPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const skeleton = "Service temporarily unavailable"
	tests := []struct {
		platform, path, body string
	}{
		{"anthropic", "/v1/responses", `{"error":{"code":"api_error","message":"No available accounts"}}`},
		{"anthropic", "/openai/v1/responses", `{"error":{"code":"api_error","message":"No available accounts"}}`},
		{"anthropic", AnthropicPath, `{"type":"error","error":{"type":"api_error","message":"` + skeleton + `"}}`},
		{"anthropic", "/v1/chat/completions", `{"error":{"type":"api_error","message":"` + skeleton + `"}}`},
		{"openai", "/v1/responses", `{"error":{"type":"api_error","message":"` + skeleton + `"}}`},
		{"openai", "/v1/chat/completions", `{"error":{"type":"api_error","message":"` + skeleton + `"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.platform+tt.path, func(t *testing.T) {
			f := e.seedRuledFixture(t, tt.platform, `{}`, false, false)
			acc := e.seedAccount(t, f.group, accountSeed{platform: tt.platform})
			e.exec(t, `UPDATE accounts SET overloaded_until = now() + interval '1 minute' WHERE id = $1`, acc)
			res := e.admit(t, Request{APIKey: f.key, Model: "m-1", Path: tt.path})
			wantBody(t, res, 503, ReasonNoAccount, tt.body)
		})
	}
}
