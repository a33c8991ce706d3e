package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Agents' sessions and models (docs/design.md, "Sticky sessions", "Models a key can use")
// through the real Traefik: the conversations of Claude Code and Codex
// stick to one account of a pool whose accounts are all alike (equal priority, so without
// stickiness the scheduler spreads the turns over the least recently used accounts), and a
// model nothing in the group names is refused before any upstream call.

// uuid4 is a random UUID in its text form, as both CLIs make their session ids.
func uuid4() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// turnServedBy sends one turn and returns the index of the credential whose account got it.
func turnServedBy(t *testing.T, creds []string, requests func(string) int, send func() (int, string)) int {
	t.Helper()
	before := make([]int, len(creds))
	for i, c := range creds {
		before[i] = requests(c)
	}
	code, body := send()
	if code != 200 {
		t.Fatalf("turn: %d %s, want 200", code, body)
	}
	for i, c := range creds {
		if requests(c) == before[i]+1 {
			return i
		}
	}
	t.Fatal("no account got the turn")
	return -1
}

func fourCredentials(prefix string) []accountSpec {
	var out []accountSpec
	for i := range 4 {
		out = append(out, accountSpec{Credential: unique(fmt.Sprintf("%s-%d", prefix, i)), Priority: 1})
	}
	return out
}

// Ten turns of one Claude Code conversation: /v1/messages with the headers and the
// metadata.user_id Claude Code sends (the JSON form of v2.1.78+, and its session header),
// each turn with other content, all on one account of four.
func TestClaudeCodeConversationSticks(t *testing.T) {
	specs := fourCredentials("sk-cc")
	tn, accts := anthropicTenant(t, nil, specs...)
	creds := credsOf(specs)
	session := uuid4()
	userID, _ := json.Marshal(map[string]string{"device_id": strings.Repeat("ab", 32), "account_uuid": "", "session_id": session})
	hdr := map[string]string{
		"x-api-key": tn.Key, "anthropic-version": "2023-06-01",
		"anthropic-beta":           "claude-code-20250219,interleaved-thinking-2025-05-14",
		"User-Agent":               "claude-cli/2.1.90 (external, cli)",
		"x-app":                    "cli",
		"X-Claude-Code-Session-Id": session,
	}
	requests := func(c string) int { return len(anthropicRequestsFor(t, c)) }
	var history []string
	first := -1
	for turn := 1; turn <= 10; turn++ {
		// Every turn differs from the first message on, so no content seed could hold it.
		history = append(history, fmt.Sprintf(`{"role":"user","content":[{"type":"text","text":"turn %d: %s"}]}`, turn, unique("q")))
		body := `{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,` +
			`"metadata":{"user_id":` + jsonString(string(userID)) + `},` +
			`"system":[{"type":"text","text":"You are Claude Code, turn ` + fmt.Sprint(turn) + `"}],` +
			`"messages":[` + strings.Join(history, ",") + `]}`
		got := turnServedBy(t, creds, requests, func() (int, string) {
			code, _, out := post(t, "/v1/messages", "", body, hdr)
			return code, out
		})
		if first < 0 {
			first = got
		} else if got != first {
			t.Fatalf("turn %d went to account %d, the conversation is on %d", turn, got, first)
		}
		history = append(history, `{"role":"assistant","content":[{"type":"text","text":"ok"}]}`)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// Ten turns of one Codex conversation: /v1/responses with Codex's session headers
// (session-id, thread-id; x-client-request-id) and its prompt_cache_key, all on one account
// of four.
func TestCodexConversationSticks(t *testing.T) {
	specs := fourCredentials("sk-codex")
	tn, accts := newTenant(t, specs...)
	creds := credsOf(specs)
	session := uuid4()
	hdr := map[string]string{
		"session-id": session, "thread-id": session, "x-client-request-id": session,
		"originator": "codex_cli_rs", "User-Agent": "codex_cli_rs/0.130.0 (Linux; x86_64)",
		"Accept": "text/event-stream",
	}
	requests := func(c string) int { return len(upstreamRequestsFor(t, c)) }
	var input []string
	first := -1
	for turn := 1; turn <= 10; turn++ {
		input = append(input, fmt.Sprintf(`{"type":"message","role":"user","content":[{"type":"input_text","text":"turn %d: %s"}]}`,
			turn, unique("q")))
		body := `{"model":"gpt-4o-mini","instructions":"You are Codex, turn ` + fmt.Sprint(turn) + `",` +
			`"input":[` + strings.Join(input, ",") + `],"stream":true,"store":false,` +
			`"include":["reasoning.encrypted_content"],"prompt_cache_key":"` + session + `"}`
		got := turnServedBy(t, creds, requests, func() (int, string) {
			code, _, out := post(t, "/v1/responses", tn.Key, body, hdr)
			return code, out
		})
		if first < 0 {
			first = got
		} else if got != first {
			t.Fatalf("turn %d went to account %d, the conversation is on %d", turn, got, first)
		}
		input = append(input, `{"type":"message","role":"assistant","content":[{"type":"output_text","text":"ok"}]}`)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}

// credsOf is the credentials of specs (anthropicTenant does not record them).
func credsOf(specs []accountSpec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Credential
	}
	return out
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// docs/design.md, "Models a key can use": a model that neither the group's mapping nor any
// account's names is 404 model_not_found in the path's shape, naming the models the key can
// use, without an upstream request and without marking an account.
func TestUnservableModelIs404(t *testing.T) {
	a, b := unique("sk-mnf-a"), unique("sk-mnf-b")
	// The group's family wildcard is no model name; the accounts' keys are.
	tn, accts := anthropicTenant(t, obj{"model_mapping": obj{"sonnet": "claude-sonnet-4-5", "claude-haiku*": "claude-haiku*"}},
		accountSpec{Credential: a, Priority: 1, ModelMapping: map[string]string{"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}},
		accountSpec{Credential: b, Priority: 1, ModelMapping: map[string]string{"claude-opus-4-5": "claude-opus-4-5",
			"claude-haiku-4-5": "claude-haiku-4-5-20251001"}})
	const msg = `Model \"gpt-4o-mini\" is not supported by any configured account in this group; ` +
		`models available to this API key: sonnet, claude-haiku-4-5, claude-opus-4-5, claude-sonnet-4-5`
	tests := []struct {
		name, path, body, want string
		hdr                    map[string]string
	}{
		{name: "messages", path: "/v1/messages",
			body: `{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`,
			hdr:  map[string]string{"x-api-key": tn.Key, "anthropic-version": "2023-06-01"},
			want: `{"type":"error","error":{"type":"not_found_error","message":"` + msg + `"}}`},
		{name: "responses, converted", path: "/v1/responses", body: `{"model":"gpt-4o-mini","input":"hi"}`,
			hdr:  map[string]string{"Authorization": "Bearer " + tn.Key},
			want: `{"error":{"code":"model_not_found","message":"` + msg + `"}}`},
		{name: "chat completions", path: "/v1/chat/completions",
			body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`,
			hdr:  map[string]string{"Authorization": "Bearer " + tn.Key},
			want: `{"error":{"type":"model_not_found","message":"` + msg + `"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := post(t, tt.path, "", tt.body, tt.hdr)
			if code != 404 || !jsonEqual(body, tt.want) {
				t.Fatalf("got %d %s\nwant 404 %s", code, body, tt.want)
			}
		})
	}
	for _, c := range []string{a, b} {
		if n := len(anthropicRequestsFor(t, c)); n != 0 {
			t.Fatalf("account %s got %d upstream requests, want none", c, n)
		}
	}
	for _, acc := range accts {
		st := accountHealth(t, acc)
		blocks, _ := st["model_blocks"].(obj)
		if len(blocks) != 0 || st["paused_until"] != nil || st["rate_limited_until"] != nil || st["breakers"] != nil {
			t.Fatalf("account %d was marked: %v", acc, st)
		}
	}
	// A model the group serves still is.
	code, _, body := post(t, "/v1/messages", "", `{"model":"claude-haiku-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"x-api-key": tn.Key, "anthropic-version": "2023-06-01"})
	if code != 200 {
		t.Fatalf("a served model: %d %s", code, body)
	}
	assertNoSlotsHeld(t, []int64{tn.UserID}, accts)
}
