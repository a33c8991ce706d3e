package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/config"
	"github.com/poolgate/poolgate/controlsvc/internal/credentials"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
)

// The rotation command re-encrypts every row under the new key and says how many; run
// again it has nothing to do; afterwards the old key is not needed to start.
func TestRotateCredentialKey(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"a", "b", "c"} {
		if _, err := st.CreateAccount(ctx, store.NewAccount{Name: name, Platform: "openai", BaseURL: "https://x.test",
			APIKey: "sk-rotate-" + name, Status: "active"}); err != nil {
			t.Fatal(err)
		}
	}
	oldKey, _ := credentials.ParseKey(storetest.CredentialKey)
	newKey, err := credentials.ParseKey("bmV3LWNyZWRlbnRpYWwta2V5LTAwMDAwMDAwMDAwMDA=") // "new-credential-key-0000000000000"
	if err != nil {
		t.Fatal(err)
	}
	r := config.Rotation{DatabaseURL: st.Pool.Config().ConnString(), Keys: credentials.NewKeyring(newKey, &oldKey)}
	for i, want := range []string{"3 account credentials re-encrypted under key id " + newKey.ID(), "0 account credentials re-encrypted"} {
		var out bytes.Buffer
		if err := rotateCredentialKey(ctx, r, &out); err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, out.String())
		}
		if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), config.EnvCredentialKeyPrevious) {
			t.Errorf("run %d printed %q, want %q and the advice to drop %s", i+1, out.String(), want, config.EnvCredentialKeyPrevious)
		}
	}
	after, err := store.Open(ctx, r.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	after.SetCredentialKeys(credentials.NewKeyring(newKey, nil))
	if _, err := after.PrepareCredentials(ctx); err != nil {
		t.Errorf("start with the new key alone after the rotation: %v", err)
	}
}

func TestRunCommandErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"unknown command", []string{"rotate"}, exitConfig, `unknown command "rotate"`},
		{"extra argument", []string{"rotate-credential-key", "now"}, exitConfig, "takes no arguments"},
		{"help", []string{"--help"}, 0, "rotate-credential-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			if code := runCommand(tt.args, &out, &errOut); code != tt.wantCode || !strings.Contains(out.String()+errOut.String(), tt.want) {
				t.Errorf("runCommand(%q) = %d, %q %q; want %d and %q", tt.args, code, out.String(), errOut.String(), tt.wantCode, tt.want)
			}
		})
	}
}

// The binary dispatches the command and refuses to run it without a key, naming the
// variable, with the configuration exit code.
func TestRotateCommandNeedsAKey(t *testing.T) {
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "rotate-credential-key")
	cmd.Env = append(baseEnv(), "POOLGATE_DATABASE_URL=postgres://u@127.0.0.1:1/db")
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitConfig || !strings.Contains(string(out), config.EnvCredentialKey+" (or") {
		t.Fatalf("exit %v, output %q; want code %d naming %s", err, out, exitConfig, config.EnvCredentialKey)
	}
}
