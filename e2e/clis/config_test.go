package clis

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The CLIs are configured with exactly the snippets docs/clients.md shows: the doc's
// gateway address and key placeholder are replaced with the test's, nothing else.
const (
	docGateway = "http://127.0.0.1:8080"
	docKey     = "YOUR_POOLGATE_KEY"
)

var docBlock = regexp.MustCompile("(?s)<!-- clis:([a-z-]+) -->\n```[a-z]*\n(.*?)```")

// docSnippets are docs/clients.md's marked code blocks by name.
func docSnippets(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "clients.md"))
	if err != nil {
		t.Fatalf("reading docs/clients.md: %v", err)
	}
	out := map[string]string{}
	for _, m := range docBlock.FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = m[2]
	}
	return out
}

func snippet(t *testing.T, name, gateway, key string) string {
	t.Helper()
	s, ok := docSnippets(t)[name]
	if !ok {
		t.Fatalf("docs/clients.md has no <!-- clis:%s --> code block", name)
	}
	if !strings.Contains(s, docGateway) && !strings.Contains(s, docKey) {
		t.Fatalf("docs/clients.md's %s block names neither %s nor %s", name, docGateway, docKey)
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, docGateway, gateway), docKey, key)
}

// exports reads `export NAME=value` lines.
func exports(t *testing.T, block string) []string {
	t.Helper()
	var env []string
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		kv, ok := strings.CutPrefix(strings.TrimSpace(line), "export ")
		if !ok || !strings.Contains(kv, "=") {
			t.Fatalf("docs/clients.md: %q is not an `export NAME=value` line", line)
		}
		env = append(env, kv)
	}
	return env
}

// codexSetup writes $CODEX_HOME/config.toml from the doc and returns Codex's environment.
// Around the doc's lines the test turns off what a CI run must not do (update checks,
// analytics); they do not point Codex anywhere.
func codexSetup(t *testing.T, sb sandbox, gateway, key string) []string {
	t.Helper()
	codexHome := filepath.Join(sb.Home, ".codex")
	if err := os.MkdirAll(codexHome, 0o755); err != nil {
		t.Fatal(err)
	}
	config := "check_for_update_on_startup = false\n" +
		snippet(t, "codex-config", gateway, key) +
		"\n[analytics]\nenabled = false\n"
	if err := os.WriteFile(filepath.Join(codexHome, "config.toml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return append([]string{"HOME=" + sb.Home, "CODEX_HOME=" + codexHome},
		exports(t, snippet(t, "codex-env", gateway, key))...)
}

// claudeSetup returns Claude Code's environment: the doc's lines and what keeps a CI run
// quiet (no auto-update, telemetry, error reports or other non-essential traffic).
func claudeSetup(t *testing.T, sb sandbox, gateway, key string) []string {
	t.Helper()
	return append([]string{"HOME=" + sb.Home, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1",
		"DISABLE_TELEMETRY=1", "DISABLE_ERROR_REPORTING=1"},
		exports(t, snippet(t, "claude-env", gateway, key))...)
}

// TestClientsDoc: docs/clients.md has every block the tests configure the CLIs with, and
// they point at the gateway and use a key as the tests need.
func TestClientsDoc(t *testing.T) {
	sn := docSnippets(t)
	for _, c := range []struct{ block, want string }{
		{"codex-config", `base_url = "` + docGateway + `/v1"`},
		{"codex-config", `wire_api = "responses"`},
		{"codex-env", "POOLGATE_API_KEY=" + docKey},
		{"claude-env", "ANTHROPIC_BASE_URL=" + docGateway},
		{"claude-env", "ANTHROPIC_API_KEY=" + docKey},
	} {
		t.Run(fmt.Sprintf("%s has %s", c.block, c.want), func(t *testing.T) {
			if !strings.Contains(sn[c.block], c.want) {
				t.Errorf("docs/clients.md block %s = %q, want a line %q", c.block, sn[c.block], c.want)
			}
		})
	}
}
