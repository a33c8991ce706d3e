package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
)

// seedOf validates body as the plugin does and returns its session seed.
func seedOf(t *testing.T, path string, hdr map[string]string, body string) string {
	t.Helper()
	info, e := validateBody(path, []byte(body))
	if e != nil {
		t.Fatalf("validateBody(%s): %+v", body, e)
	}
	h := make(http.Header)
	for k, v := range hdr {
		h.Set(k, v)
	}
	return sessionSeed(path, h, &info, seedTestKey)
}

// seedTestKey is the API key of seedOf's requests.
const seedTestKey = "sk-pg-seed-test"

func TestSessionSeed(t *testing.T) {
	t.Parallel()
	const chatBody = `{"model":"gpt-4o","prompt_cache_key":"pck-1","messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name string
		path string
		hdr  map[string]string
		body string
		want string
	}{
		{name: "session_id first", path: pathResponses,
			hdr:  map[string]string{"session_id": "s-1", "conversation_id": "c-1", "x-session-id": "x-1", "x-session-affinity": "a-1"},
			body: `{"model":"gpt-4o","prompt_cache_key":"pck-1"}`, want: "session:s-1"},
		{name: "conversation_id second", path: pathResponses,
			hdr:  map[string]string{"conversation_id": "c-1", "x-session-id": "x-1", "x-session-affinity": "a-1"},
			body: `{"model":"gpt-4o"}`, want: "session:c-1"},
		{name: "x-session-id third", path: pathChat,
			hdr: map[string]string{"X-Session-Id": "x-1", "x-session-affinity": "a-1"}, body: chatBody, want: "session:x-1"},
		{name: "x-session-affinity fourth", path: pathChat,
			hdr: map[string]string{"x-session-affinity": "a-1"}, body: chatBody, want: "session:a-1"},
		{name: "blank header skipped", path: pathChat,
			hdr: map[string]string{"session_id": "  "}, body: chatBody, want: "session:pck-1"},
		{name: "prompt_cache_key", path: pathChat, body: chatBody, want: "session:pck-1"},
		{name: "non-string prompt_cache_key ignored", path: pathMessages,
			body: `{"model":"claude","prompt_cache_key":7,"messages":[{"role":"user","content":"hi"}]}`,
			want: "content:model=claude|system=|first_user=hi"},
		{name: "responses string input", path: pathResponses,
			body: `{"model":"gpt-4o","instructions":"Be brief.","input":"What is 2+2?"}`,
			want: "content:model=gpt-4o|system=Be brief.|first_user=What is 2+2?"},
		{name: "responses items", path: pathResponses,
			body: `{"model":"gpt-4o","input":[{"role":"developer","content":"Be brief."},` +
				`{"type":"message","role":"user","content":[{"type":"input_text","text":"2+2?"}]},` +
				`{"type":"message","role":"assistant","content":"4"},{"role":"user","content":"and 3+3?"}]}`,
			want: `content:model=gpt-4o|system=` + "\n" + `Be brief.|first_user=[{"type":"input_text","text":"2+2?"}]`},
		{name: "chat with system", path: pathChat,
			body: `{"model":"gpt-4o","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}`,
			want: "content:model=gpt-4o|system=\nYou are terse.|first_user=hi"},
		{name: "anthropic system blocks", path: pathMessages,
			body: `{"model":"claude","system":[{"type":"text","text":"Be kind."}],"messages":[{"role":"user","content":[{"type":"text","text":"hello"}]}]}`,
			want: `content:model=claude|system=[{"type":"text","text":"Be kind."}]|first_user=[{"type":"text","text":"hello"}]`},
		{name: "no messages at all", path: pathChat, body: `{"model":"gpt-4o"}`,
			want: "content:model=gpt-4o|system=|first_user="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := tt.want
			if strings.HasPrefix(want, contentSeedPrefix) {
				want += "|key=" + hashSeed(seedTestKey)
			}
			if got := seedOf(t, tt.path, tt.hdr, tt.body); got != want {
				t.Fatalf("seed = %q, want %q", got, want)
			}
		})
	}
}

// Later turns of a conversation keep the hash: only the first user message counts.
func TestSessionHashStableAcrossTurns(t *testing.T) {
	t.Parallel()
	hash := func(body string) string {
		info, e := validateBody(pathChat, []byte(body))
		if e != nil {
			t.Fatalf("validateBody: %+v", e)
		}
		return sessionHash(pathChat, make(http.Header), &info, "sk-a")
	}
	turn1 := hash(`{"model":"gpt-4o","messages":[{"role":"user","content":"plan a trip"}]}`)
	turn2 := hash(`{"model":"gpt-4o","messages":[{"role":"user","content":"plan a trip"},{"role":"assistant","content":"Where to?"},{"role":"user","content":"Rome"}]}`)
	other := hash(`{"model":"gpt-4o","messages":[{"role":"user","content":"write a poem"}]}`)
	if turn1 != turn2 {
		t.Errorf("the second turn changed the hash")
	}
	if turn1 == other {
		t.Errorf("different conversations share a hash")
	}
	sum := sha256.Sum256([]byte(`content:model=gpt-4o|system=|first_user=plan a trip|key=` + hashSeed("sk-a")))
	if want := hex.EncodeToString(sum[:]); turn1 != want {
		t.Errorf("hash = %s, want the hex SHA-256 of the seed %s", turn1, want)
	}
}

// The admit request carries the hash and the wait budget (docs/design.md).
func TestAdmitCarriesSessionHashAndWaitBudget(t *testing.T) {
	t.Parallel()
	up := newTestUpstream(t)
	up.set("up-1", okReply("ok"))
	stub := newContractStub(t, stubAccount{id: 1, baseURL: up.srv.URL, apiKey: "up-1"})
	h := newTestHandler(t, stub, func(c *Config) { c.MaxWait = "42s" })
	rec := do(h, pathResponses, `{"model":"m","input":"hi"}`, map[string]string{"session_id": "abc"})
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	stub.waitReport()
	calls := stub.admitCalls()
	sum := sha256.Sum256([]byte("session:abc"))
	if len(calls) != 1 || calls[0].SessionHash != hex.EncodeToString(sum[:]) || calls[0].MaxWaitMs != 42000 ||
		calls[0].SessionSource != sessionSourceExplicit {
		t.Fatalf("admit calls = %+v", calls)
	}
	// Without a session id the content seed is sent, and said so.
	rec = do(h, pathResponses, `{"model":"m","input":"hi"}`, nil)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	stub.waitReports(2)
	if calls = stub.admitCalls(); len(calls) != 2 || calls[1].SessionSource != sessionSourceContent || calls[1].SessionHash == "" {
		t.Fatalf("admit calls = %+v", calls)
	}
}

// A content seed belongs to one API key: two users sending the same first message get two
// bindings; explicit session ids are the client's own and stay shared by design.
func TestSessionSeedPerKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		hdr        http.Header
		body       string
		source     string
		sameAcross bool
	}{
		{name: "content seed", hdr: http.Header{}, body: `{"model":"m","input":"hello"}`,
			source: sessionSourceContent, sameAcross: false},
		{name: "session header", hdr: http.Header{"Session_id": {"s-1"}}, body: `{"model":"m","input":"hello"}`,
			source: sessionSourceExplicit, sameAcross: true},
		{name: "prompt_cache_key", hdr: http.Header{}, body: `{"model":"m","input":"hello","prompt_cache_key":"k"}`,
			source: sessionSourceExplicit, sameAcross: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			info, e := validateBody(pathResponses, []byte(tt.body))
			if e != nil {
				t.Fatalf("validateBody: %+v", e)
			}
			a := sessionSeed(pathResponses, tt.hdr, &info, "sk-user-a")
			b := sessionSeed(pathResponses, tt.hdr, &info, "sk-user-b")
			if got := seedSource(a); got != tt.source {
				t.Fatalf("source = %q, want %q", got, tt.source)
			}
			if (a == b) != tt.sameAcross {
				t.Fatalf("seeds of two keys: %q and %q, want equal = %v", a, b, tt.sameAcross)
			}
			if again := sessionSeed(pathResponses, tt.hdr, &info, "sk-user-a"); again != a {
				t.Fatalf("seed of one key changed: %q, %q", a, again)
			}
		})
	}
}
