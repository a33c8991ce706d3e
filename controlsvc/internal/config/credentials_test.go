package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Two test keys (base64 of 32 bytes) and the first 8 hex digits of their SHA-256.
const (
	testCredentialKey     = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	testCredentialKeyID   = "66687aad"
	otherCredentialKey    = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="
	otherCredentialKeyID  = "37d171c8"
	notACredentialKeyText = "hunter2-hunter2-hunter2-hunter2!" // 32 characters, not base64 of 32 bytes
)

func TestCredentialKeysFromEnv(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodFile := file("good", otherCredentialKey+"\n")
	badFile := file("bad", notACredentialKeyText)
	tests := []struct {
		name         string
		env          map[string]string
		wantCurrent  string
		wantPrevious string
		wantErr      string // a variable name the error must carry
	}{
		{"key", nil, testCredentialKeyID, "", ""},
		{"key file", map[string]string{EnvCredentialKey: "", EnvCredentialKeyFile: goodFile}, otherCredentialKeyID, "", ""},
		{"with previous", map[string]string{EnvCredentialKeyPrevious: otherCredentialKey}, testCredentialKeyID, otherCredentialKeyID, ""},
		{"previous file", map[string]string{EnvCredentialKeyPreviousFile: goodFile}, testCredentialKeyID, otherCredentialKeyID, ""},
		{"no key", map[string]string{EnvCredentialKey: ""}, "", "", EnvCredentialKey},
		{"both set", map[string]string{EnvCredentialKeyFile: goodFile}, "", "", EnvCredentialKeyFile},
		{"not base64 of 32 bytes", map[string]string{EnvCredentialKey: notACredentialKeyText}, "", "", EnvCredentialKey + ":"},
		{"bad file", map[string]string{EnvCredentialKey: "", EnvCredentialKeyFile: badFile}, "", "", EnvCredentialKeyFile + ":"},
		{"missing file", map[string]string{EnvCredentialKey: "", EnvCredentialKeyFile: filepath.Join(dir, "nope")}, "", "", EnvCredentialKeyFile + ":"},
		{"bad previous", map[string]string{EnvCredentialKeyPrevious: notACredentialKeyText}, "", "", EnvCredentialKeyPrevious + ":"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			cfg, err := FromEnv()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromEnv() error = %v, want it to name %s", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), notACredentialKeyText) || strings.Contains(err.Error(), otherCredentialKey) {
					t.Errorf("error %q repeats a key", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if got := cfg.CredentialKeys; got.CurrentID() != tt.wantCurrent || got.PreviousID() != tt.wantPrevious {
				t.Errorf("keys = current %s previous %q, want %s %q", got.CurrentID(), got.PreviousID(), tt.wantCurrent, tt.wantPrevious)
			}
		})
	}
}

func TestRotationFromEnv(t *testing.T) {
	// The rotation command needs neither Redis nor the secrets of the running service.
	setEnv(t, map[string]string{EnvRedisURL: "", EnvAdminToken: "", EnvPluginSecret: "", EnvCredentialKeyPrevious: otherCredentialKey})
	r, err := RotationFromEnv()
	if err != nil || r.DatabaseURL != validEnv[EnvDatabaseURL] || r.Keys.CurrentID() != testCredentialKeyID || r.Keys.PreviousID() != otherCredentialKeyID {
		t.Fatalf("RotationFromEnv() = %+v, %v", r, err)
	}
	setEnv(t, map[string]string{EnvDatabaseURL: ""})
	if _, err := RotationFromEnv(); err == nil || !strings.Contains(err.Error(), EnvDatabaseURL) {
		t.Errorf("without a database: %v", err)
	}
}
