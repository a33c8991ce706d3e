package plugin

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSecretSpec(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		want    string
		wantErr error
	}{
		{name: "secret", cfg: Config{PluginSecret: "s"}, want: "s"},
		{name: "file", cfg: Config{PluginSecretFile: " /run/secret "}, want: fileSpecPrefix + "/run/secret"},
		{name: "both", cfg: Config{PluginSecret: "s", PluginSecretFile: "/f"}, wantErr: errSecretBoth},
		{name: "neither", cfg: Config{}, wantErr: errMissingSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := secretSpec(&tt.cfg)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("secretSpec = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestSecretFileReadLazilyAndRefreshed: the file is read at the first use, not before; a
// new content is used once the refresh period passed; a file that went missing keeps the
// last secret in use; a file never readable fails the call without naming the secret.
func TestSecretFileReadLazilyAndRefreshed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	src := newSecretSource(fileSpecPrefix + path)
	if _, err := get(src); err == nil {
		t.Fatal("get succeeded before the file existed")
	}
	if err := os.WriteFile(path, []byte("old-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := get(src); err != nil || got != "old-secret" {
		t.Fatalf("get = %q, %v; want old-secret (one trailing newline dropped)", got, err)
	}
	if err := os.WriteFile(path, []byte("new-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := get(src); got != "old-secret" {
		t.Fatalf("get = %q within the refresh period, want the cached old-secret", got)
	}
	src.readAt = time.Now().Add(-secretFileRefresh) // the period passed
	if got, _ := get(src); got != "new-secret" {
		t.Fatalf("get = %q after the refresh period, want new-secret", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	src.readAt = time.Now().Add(-secretFileRefresh)
	if got, err := get(src); err != nil || got != "new-secret" {
		t.Fatalf("get = %q, %v with the file gone, want the last secret read", got, err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := get(newSecretSource(fileSpecPrefix + empty)); !errors.Is(err, errSecretEmpty) {
		t.Fatalf("empty file: err = %v, want errSecretEmpty", err)
	}
}
