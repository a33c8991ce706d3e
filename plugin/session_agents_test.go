package plugin

import (
	"strings"
	"testing"
)

// The seed order of the agents' session ids, every spelling. Each case names
// the seed it must give; cases with more sources show which one wins.
func TestSessionSeedAgentSpellings(t *testing.T) {
	t.Parallel()
	const (
		ccSession = "5e2f7c1a-0b9d-4c3e-8f6a-1d2c3b4a5e6f"
		legacyUID = "user_2f6c0e4b9a8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b_account_" +
			"0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9_session_" + ccSession
		legacyNoAccount = "user_2f6c0e4b_account__session_" + ccSession
		codexSession    = "019ee74f-22b5-7043-b5fc-697ca0fbd5a6"
		msgs            = `"messages":[{"role":"user","content":"hi"}]`
	)
	jsonUID := `{\"device_id\":\"d-1\",\"account_uuid\":\"\",\"session_id\":\"` + ccSession + `\"}`
	tests := []struct {
		name string
		path string
		hdr  map[string]string
		body string
		want string // "" = the content seed
	}{
		{name: "X-Claude-Code-Session-Id", path: pathMessages,
			hdr:  map[string]string{"X-Claude-Code-Session-Id": ccSession},
			body: `{"model":"claude-sonnet-4-5",` + msgs + `}`, want: ccSession},
		{name: "lower-case x-claude-code-session-id", path: pathMessages,
			hdr:  map[string]string{"x-claude-code-session-id": ccSession},
			body: `{"model":"claude-sonnet-4-5",` + msgs + `}`, want: ccSession},
		{name: "Claude Code header beats user_id and session_id", path: pathMessages,
			hdr:  map[string]string{"X-Claude-Code-Session-Id": "hdr", "session_id": "s"},
			body: `{"model":"c","metadata":{"user_id":"user_a_account_b_session_uid"},` + msgs + `}`, want: "hdr"},
		{name: "legacy user_id", path: pathMessages,
			body: `{"model":"c","metadata":{"user_id":"` + legacyUID + `"},` + msgs + `}`, want: ccSession},
		{name: "legacy user_id without account", path: pathMessages,
			body: `{"model":"c","metadata":{"user_id":"` + legacyNoAccount + `"},` + msgs + `}`, want: ccSession},
		{name: "JSON user_id (v2.1.78+)", path: pathMessages,
			body: `{"model":"c","metadata":{"user_id":"` + jsonUID + `"},` + msgs + `}`, want: ccSession},
		{name: "user_id beats session_id header", path: pathMessages,
			hdr:  map[string]string{"session_id": "s"},
			body: `{"model":"c","metadata":{"user_id":"` + jsonUID + `"},` + msgs + `}`, want: ccSession},
		{name: "plain user_id is no seed", path: pathMessages,
			body: `{"model":"c","metadata":{"user_id":"alice"},` + msgs + `}`},
		{name: "JSON user_id without session_id is no seed", path: pathMessages,
			body: `{"model":"c","metadata":{"user_id":"{\"device_id\":\"d\"}"},` + msgs + `}`},
		{name: "non-string user_id is no seed", path: pathMessages,
			body: `{"model":"c","metadata":{"user_id":42},` + msgs + `}`},
		{name: "metadata not an object is no seed", path: pathMessages,
			body: `{"model":"c","metadata":"x",` + msgs + `}`},
		{name: "blank user_id session falls through to prompt_cache_key", path: pathChat,
			body: `{"model":"c","metadata":{"user_id":"user_a_session_ "},"prompt_cache_key":"k",` + msgs + `}`, want: "k"},
		{name: "Codex session_id", path: pathResponses,
			hdr: map[string]string{"session_id": codexSession}, body: `{"model":"gpt-5-codex","input":"hi"}`, want: codexSession},
		{name: "Codex session-id", path: pathResponses,
			hdr: map[string]string{"session-id": codexSession}, body: `{"model":"gpt-5-codex","input":"hi"}`, want: codexSession},
		{name: "Codex both spellings", path: pathResponses,
			hdr:  map[string]string{"session_id": codexSession, "session-id": codexSession},
			body: `{"model":"gpt-5-codex","input":"hi","prompt_cache_key":"` + codexSession + `"}`, want: codexSession},
		{name: "session_id beats session-id", path: pathResponses,
			hdr: map[string]string{"session_id": "a", "session-id": "b"}, body: `{"model":"m","input":"hi"}`, want: "a"},
		{name: "session-id beats conversation_id", path: pathResponses,
			hdr: map[string]string{"session-id": "b", "conversation_id": "c"}, body: `{"model":"m","input":"hi"}`, want: "b"},
		{name: "conversation_id", path: pathResponses,
			hdr: map[string]string{"conversation_id": "c"}, body: `{"model":"m","input":"hi"}`, want: "c"},
		{name: "prompt_cache_key on Responses", path: pathResponses,
			body: `{"model":"m","input":"hi","prompt_cache_key":"` + codexSession + `"}`, want: codexSession},
		{name: "prompt_cache_key on Chat", path: pathChat,
			body: `{"model":"m","prompt_cache_key":"pck",` + msgs + `}`, want: "pck"},
		{name: "nothing: content seed", path: pathMessages, body: `{"model":"c",` + msgs + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := seedOf(t, tt.path, tt.hdr, tt.body)
			if tt.want == "" {
				if !strings.HasPrefix(got, contentSeedPrefix) || seedSource(got) != sessionSourceContent {
					t.Fatalf("seed = %q, want the content seed", got)
				}
				return
			}
			if want := explicitSeedPrefix + tt.want; got != want || seedSource(got) != sessionSourceExplicit {
				t.Fatalf("seed = %q (source %s), want %q (explicit)", got, seedSource(got), want)
			}
		})
	}
}

// One Claude Code conversation keeps its binding whether a turn carries the header, the
// user_id or both: they name the same uuid and give the same seed.
func TestClaudeCodeHeaderAndUserIDAgree(t *testing.T) {
	t.Parallel()
	const sid = "5e2f7c1a-0b9d-4c3e-8f6a-1d2c3b4a5e6f"
	byHeader := seedOf(t, pathMessages, map[string]string{"X-Claude-Code-Session-Id": sid},
		`{"model":"c","messages":[{"role":"user","content":"one"}]}`)
	byUserID := seedOf(t, pathMessages, nil,
		`{"model":"c","metadata":{"user_id":"user_ab_account__session_`+sid+`"},"messages":[{"role":"user","content":"two"}]}`)
	if byHeader != byUserID {
		t.Fatalf("seeds differ: %q vs %q", byHeader, byUserID)
	}
}
