package yaegi

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
)

// seedProbe hands the interpreted session seed (plugin/session.go) to the test: the seed a
// body and its headers give, as the plugin computes it after validation.
const seedProbe = `package plugin

import "net/http"

// SeedProbe is test scaffolding written by tests/yaegi/session_seed_test.go; not plugin code.
func SeedProbe() func(string, http.Header, string) string {
	return func(path string, h http.Header, body string) string {
		info, e := validateBody(path, []byte(body))
		if e != nil {
			return "invalid"
		}
		return sessionSeed(path, h, &info, "sk-pg-probe")
	}
}
`

func loadSeedProbe(t *testing.T) func(string, http.Header, string) string {
	t.Helper()
	dir := t.TempDir()
	module, err := readModulePath(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "src", filepath.FromSlash(module))
	if err := copyDir(filepath.Join(repoRoot, "plugin"), filepath.Join(dst, "plugin")); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(repoRoot, "go.mod"), filepath.Join(dst, "go.mod")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "plugin", "zz_seedprobe.go"), []byte(seedProbe), 0o644); err != nil {
		t.Fatal(err)
	}
	i := interp.New(interp.Options{GoPath: dir, Env: os.Environ()})
	if err := i.Use(stdlib.Symbols); err != nil {
		t.Fatal(err)
	}
	if _, err := safeEval(i, fmt.Sprintf("import %q", module+"/plugin")); err != nil {
		t.Fatalf("importing the plugin with the probe: %v", err)
	}
	fn, err := safeEval(i, "plugin.SeedProbe")
	if err != nil {
		t.Fatalf("evaluating SeedProbe: %v", err)
	}
	return fn.Call([]reflect.Value{})[0].Interface().(func(string, http.Header, string) string)
}

// docs/design.md, "Sticky sessions", under Yaegi: every spelling of the agents' session
// ids, in order.
func TestSessionSeedAgentSpellingsInterpreted(t *testing.T) {
	seed := loadSeedProbe(t)
	const sid = "5e2f7c1a-0b9d-4c3e-8f6a-1d2c3b4a5e6f"
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name string
		path string
		hdr  map[string]string
		body string
		want string // "" = a content seed
	}{
		{name: "X-Claude-Code-Session-Id", path: "/v1/messages",
			hdr: map[string]string{"X-Claude-Code-Session-Id": sid, "session_id": "s"}, body: `{"model":"c",` + msgs + `}`, want: sid},
		{name: "legacy user_id", path: "/v1/messages",
			body: `{"model":"c","metadata":{"user_id":"user_ab_account_cd_session_` + sid + `"},` + msgs + `}`, want: sid},
		{name: "JSON user_id", path: "/v1/messages", hdr: map[string]string{"session_id": "s"},
			body: `{"model":"c","metadata":{"user_id":"{\"device_id\":\"d\",\"account_uuid\":\"\",\"session_id\":\"` + sid + `\"}"},` + msgs + `}`,
			want: sid},
		{name: "plain user_id is no seed", path: "/v1/messages",
			body: `{"model":"c","metadata":{"user_id":"alice"},` + msgs + `}`},
		{name: "session_id", path: "/v1/responses", hdr: map[string]string{"session_id": "a", "session-id": "b"},
			body: `{"model":"m","input":"hi"}`, want: "a"},
		{name: "session-id", path: "/v1/responses", hdr: map[string]string{"session-id": "b", "conversation_id": "c"},
			body: `{"model":"m","input":"hi"}`, want: "b"},
		{name: "conversation_id", path: "/v1/responses", hdr: map[string]string{"conversation_id": "c"},
			body: `{"model":"m","input":"hi","prompt_cache_key":"k"}`, want: "c"},
		{name: "prompt_cache_key", path: "/v1/chat/completions", body: `{"model":"m","prompt_cache_key":"k",` + msgs + `}`, want: "k"},
		{name: "content", path: "/v1/chat/completions", body: `{"model":"m",` + msgs + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := make(http.Header)
			for k, v := range tt.hdr {
				h.Set(k, v)
			}
			got := seed(tt.path, h, tt.body)
			if tt.want == "" {
				if len(got) < 8 || got[:8] != "content:" {
					t.Fatalf("seed = %q, want a content seed", got)
				}
				return
			}
			if got != "session:"+tt.want {
				t.Fatalf("seed = %q, want %q", got, "session:"+tt.want)
			}
		})
	}
}

// Under Yaegi through the stack: a Claude Code conversation seeded only by its
// metadata.user_id (no session header), and a Codex one only by its session-id header, each
// keep one account of three equal ones while every turn's content differs.
func TestAgentSessionsStickInterpreted(t *testing.T) {
	s := getStack(t)
	tests := []struct {
		name     string
		platform string
		path     string
		hdr      func(key string) map[string]string
		body     func(turn int) string
	}{
		{name: "claude code user_id", platform: "anthropic", path: "/v1/messages",
			hdr: func(key string) map[string]string {
				return map[string]string{"x-api-key": key, "anthropic-version": "2023-06-01"}
			},
			body: func(turn int) string {
				return fmt.Sprintf(`{"model":"claude-sonnet-4-5","max_tokens":64,`+
					`"metadata":{"user_id":"{\"device_id\":\"d\",\"account_uuid\":\"\",\"session_id\":\"cc-sess-1\"}"},`+
					`"messages":[{"role":"user","content":"turn %d"}]}`, turn)
			}},
		{name: "codex session-id", platform: "openai", path: "/v1/responses",
			hdr: func(key string) map[string]string {
				return map[string]string{"Authorization": "Bearer " + key, "session-id": "codex-sess-1"}
			},
			body: func(turn int) string { return fmt.Sprintf(`{"model":"gpt-4o","input":"turn %d"}`, turn) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := s.seedOn(t, tt.platform, accountSpec{name: "a", priority: 1}, accountSpec{name: "b", priority: 1},
				accountSpec{name: "c", priority: 1})
			first := int64(0)
			for turn := 1; turn <= 4; turn++ {
				before := make(map[int64]int)
				for _, a := range tn.accounts {
					before[a.id] = len(s.upstreamRequests(a.cred))
				}
				rec := serve(t, s.handler, tt.path, tt.hdr(tn.key), tt.body(turn))
				if rec.Code != 200 {
					t.Fatalf("turn %d: status %d: %s", turn, rec.Code, rec.Body)
				}
				got := int64(0)
				for _, a := range tn.accounts {
					if len(s.upstreamRequests(a.cred)) == before[a.id]+1 {
						got = a.id
					}
				}
				if first == 0 {
					first = got
				} else if got != first {
					t.Fatalf("turn %d went to account %d, the conversation is on %d", turn, got, first)
				}
			}
			s.waitIdle(t, tn)
		})
	}
}
