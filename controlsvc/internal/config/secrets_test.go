package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretsAndListenersErrors(t *testing.T) {
	long := strings.Repeat("s", MinSecretBytes)
	tests := []struct {
		name              string
		env               map[string]string
		wantVar, wantText string
	}{
		{"admin token too short", map[string]string{EnvAdminToken: "short-token"}, EnvAdminToken, "too short"},
		{"plugin secret too short", map[string]string{EnvPluginSecret: strings.Repeat("p", MinSecretBytes-1)}, EnvPluginSecret, "too short"},
		{"plugin secret too long", map[string]string{EnvPluginSecret: strings.Repeat("p", MaxSecretBytes+1)}, EnvPluginSecret, "too long"},
		{"previous secret too short", map[string]string{EnvPluginSecretPrevious: "old"}, EnvPluginSecretPrevious, "too short"},
		{"token and file both set", map[string]string{EnvAdminTokenFile: "/nonexistent"}, EnvAdminTokenFile, "both set"},
		{"secret file missing", map[string]string{EnvPluginSecret: "", EnvPluginSecretFile: "/nonexistent/secret"}, EnvPluginSecretFile, "reading"},
		{"admin token is the plugin secret", map[string]string{EnvAdminToken: long, EnvPluginSecret: long}, EnvAdminToken, "same value"},
		{"admin listener shared", map[string]string{EnvAdminListen: DefaultListen}, EnvAdminListen, "own listener"},
		{"metrics listener not host:port", map[string]string{EnvMetricsListen: "9090"}, EnvMetricsListen, "host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := fromEnvError(t, tt.env, tt.wantVar, tt.wantText)
			for _, v := range tt.env {
				if len(v) >= MinSecretBytes && strings.Contains(msg, v) {
					t.Errorf("error %q repeats a secret", msg)
				}
			}
		})
	}
}

func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	admin := strings.Repeat("a", 40)
	current, previous := strings.Repeat("c", 33), strings.Repeat("p", 34)
	cfg := mustFromEnv(t, map[string]string{
		EnvAdminToken: "", EnvAdminTokenFile: write("admin", admin+"\n"),
		EnvPluginSecret: "", EnvPluginSecretFile: write("current", current+"\r\n"),
		EnvPluginSecretPreviousFile: write("previous", previous),
		EnvAdminListen:              "127.0.0.1:18091", EnvMetricsListen: "127.0.0.1:19090",
	})
	if cfg.AdminToken != admin || cfg.PluginSecret != current || cfg.PluginSecretPrevious != previous {
		t.Fatalf("secrets from files = %q, %q, %q; want the files' contents less one line end", cfg.AdminToken, cfg.PluginSecret, cfg.PluginSecretPrevious)
	}
	if cfg.AdminListen != "127.0.0.1:18091" || cfg.MetricsListen != "127.0.0.1:19090" {
		t.Fatalf("listeners = %s, %s", cfg.AdminListen, cfg.MetricsListen)
	}
	if got := fromEnvError(t, map[string]string{EnvAdminToken: "", EnvAdminTokenFile: write("short", "abc\n")}, EnvAdminTokenFile, "too short"); got == "" {
		t.Fatal("no error for a short token file")
	}
}
