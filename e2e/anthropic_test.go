package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
)

// Anthropic groups through the real Traefik (docs/design.md, "Group model rules and
// dispatch"): native /v1/messages with the
// official Anthropic Go SDK, failover between Anthropic accounts, the group's model rules and
// their refusals. Responses-to-Messages conversion is the plugin's and tested with it.

// anthropicTenant is one user with a key on an anthropic group of its own; group holds extra
// group fields (model rules), accounts are anthropic accounts on the fake upstream.
func anthropicTenant(t *testing.T, group obj, accounts ...accountSpec) (tenant, []int64) {
	t.Helper()
	u := mustAdmin(t, "POST", "/users", obj{"name": unique("user"), "concurrency": 5, "balance_usd": 10})
	body := obj{"name": unique("group"), "platform": "anthropic"}
	for k, v := range group {
		body[k] = v
	}
	g := mustAdmin(t, "POST", "/groups", body)
	var ids []int64
	for _, a := range accounts {
		acc := obj{"name": unique("acct"), "platform": "anthropic", "base_url": gw.FakeURL,
			"credential": obj{"api_key": a.Credential}, "priority": a.Priority, "concurrency": 10, "group_ids": []int64{id(g)}}
		if a.ModelMapping != nil {
			acc["model_mapping"] = a.ModelMapping
		}
		ids = append(ids, id(mustAdmin(t, "POST", "/accounts", acc)))
	}
	k := mustAdmin(t, "POST", "/api-keys", obj{"user_id": id(u), "group_id": id(g), "name": "e2e"})
	key, _ := k["key"].(string)
	if key == "" {
		t.Fatalf("api key creation returned no key: %v", k)
	}
	return tenant{UserID: id(u), GroupID: id(g), KeyID: id(k), Key: key}, ids
}

func anthropicClient(key string) anthropic.Client {
	return anthropic.NewClient(anthropicoption.WithBaseURL(gw.GatewayURL), anthropicoption.WithAPIKey(key),
		anthropicoption.WithMaxRetries(0))
}

func messageParams(model string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     anthropic.Model(model),
		MaxTokens: 256,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say something"))},
	}
}

// anthropicRequestsFor lists the requests the fake upstream received with this credential
// as x-api-key (how the grant authenticates an Anthropic account).
func anthropicRequestsFor(t *testing.T, credential string) []upstreamRequest {
	t.Helper()
	return fakeRequestsWith(t, "x-api-key", credential)
}

// upstreamModelOf is the model field of a recorded upstream request body.
func upstreamModelOf(t *testing.T, r upstreamRequest) string {
	t.Helper()
	var b struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
		t.Fatalf("upstream body %q: %v", r.Body, err)
	}
	return b.Model
}

const anthropicText = "Native Messages through poolgate."

// 120 input tokens in all, 100 read from cache and 7 written: Anthropic reports 13 input.
var anthropicUsage = obj{"input_tokens": 120, "cached_tokens": 100, "cache_creation_tokens": 7, "output_tokens": 30}

func checkAnthropicMessage(t *testing.T, m anthropic.Message) {
	t.Helper()
	if len(m.Content) != 1 || m.Content[0].Text != anthropicText || m.StopReason != "end_turn" {
		t.Errorf("message = %+v, want one text block %q ending end_turn", m.Content, anthropicText)
	}
	u := m.Usage
	if u.InputTokens != 13 || u.CacheReadInputTokens != 100 || u.CacheCreationInputTokens != 7 || u.OutputTokens != 30 {
		t.Errorf("usage = %+v, want input 13, cache read 100, cache creation 7, output 30", u)
	}
}

func TestAnthropicMessagesPassThrough(t *testing.T) {
	cred := unique("sk-ant")
	programCredential(t, cred, obj{"text": anthropicText, "usage": anthropicUsage})
	tn, accts := anthropicTenant(t, nil, accountSpec{Credential: cred})
	client := anthropicClient(tn.Key)

	t.Run("non-stream", func(t *testing.T) {
		m, err := client.Messages.New(ctxT(t), messageParams("claude-sonnet-4-5"))
		if err != nil {
			t.Fatalf("Messages.New: %v", err)
		}
		checkAnthropicMessage(t, *m)
	})
	t.Run("stream", func(t *testing.T) {
		stream := client.Messages.NewStreaming(ctxT(t), messageParams("claude-sonnet-4-5"))
		defer stream.Close()
		var m anthropic.Message
		for stream.Next() {
			if err := m.Accumulate(stream.Current()); err != nil {
				t.Fatalf("accumulate: %v", err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		checkAnthropicMessage(t, m)
	})

	// The upstream saw the account's credential, Anthropic's version header and the path as sent.
	reqs := anthropicRequestsFor(t, cred)
	if len(reqs) != 2 {
		t.Fatalf("upstream got %d requests with the account's key, want 2", len(reqs))
	}
	for _, r := range reqs {
		if r.Path != "/v1/messages" || headerValue(r.Headers, "anthropic-version") == "" ||
			headerValue(r.Headers, "Authorization") != "" || upstreamModelOf(t, r) != "claude-sonnet-4-5" {
			t.Errorf("upstream request = %s %v model %q", r.Path, r.Headers, upstreamModelOf(t, r))
		}
	}
	// Usage is recorded exclusive of cache tokens, and priced.
	for _, rec := range usageFor(t, tn.KeyID, 2) {
		if num(rec, "input_tokens") != 13 || num(rec, "cache_read_tokens") != 100 || num(rec, "cache_creation_tokens") != 7 ||
			num(rec, "output_tokens") != 30 || num(rec, "status") != 200 || rec["path"] != "/v1/messages" || rec["priced"] != true {
			t.Errorf("usage record = %v", rec)
		}
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestAnthropicFailoverOn529(t *testing.T) {
	overloaded, healthy := unique("sk-ant529"), unique("sk-antok")
	programCredential(t, overloaded, obj{"status": 529})
	programCredential(t, healthy, obj{"text": anthropicText, "usage": anthropicUsage})
	// The overloaded account has the better priority, so it is tried first.
	tn, accts := anthropicTenant(t, nil, accountSpec{Credential: overloaded, Priority: 1}, accountSpec{Credential: healthy, Priority: 2})
	client := anthropicClient(tn.Key)

	m, err := client.Messages.New(ctxT(t), messageParams("claude-sonnet-4-5"))
	if err != nil {
		t.Fatalf("request failed instead of failing over: %v", err)
	}
	checkAnthropicMessage(t, *m)
	rec := usageFor(t, tn.KeyID, 1)[0]
	if num(rec, "attempts") != 2 || num(rec, "account_id") != accts[1] || num(rec, "status") != 200 {
		t.Errorf("usage record = %v", rec)
	}

	// A 529 no longer pauses the account (docs/design.md, "Health model": it counts towards
	// the breaker of (account, model), below its threshold here): a streaming request fails
	// over from it too.
	stream := client.Messages.NewStreaming(ctxT(t), messageParams("claude-sonnet-4-5"))
	var sm anthropic.Message
	for stream.Next() {
		if err := sm.Accumulate(stream.Current()); err != nil {
			t.Fatalf("accumulate: %v", err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	stream.Close()
	checkAnthropicMessage(t, sm)
	if n := len(anthropicRequestsFor(t, overloaded)); n != 2 {
		t.Errorf("overloaded account got %d requests, want 2 (one 529 is no account mark)", n)
	}
	if n := len(anthropicRequestsFor(t, healthy)); n != 2 {
		t.Errorf("healthy account got %d requests, want 2", n)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// wantAnthropicError checks an SDK error: status, Anthropic type and the raw envelope.
func wantAnthropicError(t *testing.T, err error, status int, errType, message string) {
	t.Helper()
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("error = %v, want an API error %d", err, status)
	}
	want := `{"type":"error","error":{"type":"` + errType + `","message":"` + message + `"}}`
	if apiErr.StatusCode != status || string(apiErr.Type()) != errType || !jsonEqual(apiErr.RawJSON(), want) {
		t.Fatalf("got %d %s, want %d %s", apiErr.StatusCode, apiErr.RawJSON(), status, want)
	}
}

func TestAnthropicGroupRules(t *testing.T) {
	cred := unique("sk-antrules")
	programCredential(t, cred, obj{"text": anthropicText, "usage": anthropicUsage})
	const msgCCO = "This group is restricted to Claude Code clients (/v1/messages only)"
	tn, accts := anthropicTenant(t, obj{
		"model_mapping":   obj{"sonnet": "claude-sonnet-4-5", "claude-haiku-4-5*": "claude-haiku-4-5*"},
		"restrict_models": true, "claude_code_only": true,
	}, accountSpec{Credential: cred, ModelMapping: map[string]string{"claude-sonnet-4-5": "claude-sonnet-4-5-20250929", "claude-haiku*": "claude-haiku-4-5-20251001"}})
	client := anthropicClient(tn.Key)

	t.Run("claude_code_only refuses the OpenAI endpoints", func(t *testing.T) {
		tests := []struct{ path, body, want string }{
			{"/v1/responses", `{"model":"sonnet","input":"hi"}`, `{"error":{"code":"permission_error","message":"` + msgCCO + `"}}`},
			{"/openai/v1/responses", `{"model":"sonnet","input":"hi"}`, `{"error":{"code":"permission_error","message":"` + msgCCO + `"}}`},
			{"/v1/chat/completions", `{"model":"sonnet","messages":[{"role":"user","content":"hi"}]}`,
				`{"error":{"type":"permission_error","message":"` + msgCCO + `"}}`},
		}
		for _, tt := range tests {
			code, _, body := post(t, tt.path, tn.Key, tt.body, nil)
			if code != http.StatusForbidden || !jsonEqual(body, tt.want) {
				t.Errorf("%s: got %d %s, want 403 %s", tt.path, code, body, tt.want)
			}
		}
	})

	t.Run("the group's mapping, then the account's, on /v1/messages", func(t *testing.T) {
		m, err := client.Messages.New(ctxT(t), messageParams("sonnet"))
		if err != nil {
			t.Fatalf("Messages.New: %v", err)
		}
		checkAnthropicMessage(t, *m)
		reqs := anthropicRequestsFor(t, cred)
		if len(reqs) != 1 || upstreamModelOf(t, reqs[0]) != "claude-sonnet-4-5-20250929" {
			t.Fatalf("upstream requests = %v, want one for claude-sonnet-4-5-20250929", reqs)
		}
		rec := usageFor(t, tn.KeyID, 1)[0]
		if rec["model"] != "sonnet" || rec["upstream_model"] != "claude-sonnet-4-5-20250929" || rec["priced"] != true {
			t.Errorf("usage record = %v, want model sonnet sent as claude-sonnet-4-5-20250929, priced", rec)
		}
	})

	t.Run("a model the pass-through wildcard names", func(t *testing.T) {
		if _, err := client.Messages.New(ctxT(t), messageParams("claude-haiku-4-5")); err != nil {
			t.Fatalf("Messages.New: %v", err)
		}
	})

	t.Run("a model the restricted group does not name", func(t *testing.T) {
		_, err := client.Messages.New(ctxT(t), messageParams("claude-opus-4-1"))
		wantAnthropicError(t, err, http.StatusServiceUnavailable, "api_error", "The requested model is not available for this API key")
	})
	if n := len(anthropicRequestsFor(t, cred)); n != 2 {
		t.Errorf("upstream got %d requests, want 2 (refusals never reach it)", n)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

func TestAnthropicMessagesOnOpenAIGroup(t *testing.T) {
	cred := unique("sk-oa")
	tn, accts := newTenant(t, accountSpec{Credential: cred})
	client := anthropicClient(tn.Key)
	_, err := client.Messages.New(ctxT(t), messageParams("gpt-4o"))
	wantAnthropicError(t, err, http.StatusBadRequest, "invalid_request_error",
		"This endpoint requires an Anthropic group; this API key's group serves OpenAI models (use /v1/responses or /v1/chat/completions)")
	if n := len(upstreamRequestsFor(t, cred)); n != 0 {
		t.Errorf("upstream got %d requests, want 0", n)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
