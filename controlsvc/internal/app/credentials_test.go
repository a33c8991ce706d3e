package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/config"
	"github.com/poolgate/poolgate/controlsvc/internal/credentials"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/store/storetest"
)

// Once credentials are encrypted, controlsvc starts only with a key they were encrypted
// with, as the current or the previous one, and says which variable to set otherwise. A
// start with the right key seals a row an older version left in plaintext; a refused one
// leaves it alone.
func TestNewChecksTheCredentialKey(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	_, err = a.store.CreateAccount(ctx, store.NewAccount{Name: "a", Platform: "openai", BaseURL: "https://x.test",
		APIKey: "sk-start-check", Status: "active"})
	if err != nil {
		t.Fatal(err)
	}
	var plainID int64
	if err := a.store.Pool.QueryRow(ctx, `INSERT INTO accounts (name, platform, base_url, credential)
		VALUES ('old', 'openai', 'https://x.test', '{"api_key": "sk-left-in-plaintext"}') RETURNING id`).Scan(&plainID); err != nil {
		t.Fatal(err)
	}
	plaintextLeft := func() bool {
		var n int
		if err := a.store.Pool.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE credential <> '{}'::jsonb`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	defer a.Close()

	key := func(b64 string) credentials.Key {
		k, err := credentials.ParseKey(b64)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	current := cfg.CredentialKeys
	other := key("b3RoZXItY3JlZGVudGlhbC1rZXktMDAwMDAwMDAwMDA=") // "other-credential-key-00000000000"
	old := key(storetest.CredentialKey)
	tests := []struct {
		name string
		keys *credentials.Keyring
		want []string // "" = starts
	}{
		{"no key", nil, []string{config.EnvCredentialKey, "1 account credentials are encrypted", current.CurrentID()}},
		{"another key", credentials.NewKeyring(other, nil), []string{config.EnvCredentialKey, config.EnvCredentialKeyPrevious, current.CurrentID(), other.ID()}},
		{"the key", current, nil}, // seals the plaintext row
		{"new key, old one previous", credentials.NewKeyring(other, &old), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.CredentialKeys = tt.keys
			wasPlain := plaintextLeft()
			b, err := New(ctx, c)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				b.Close()
				return
			}
			if err == nil {
				b.Close()
				t.Fatal("New succeeded, want a refusal")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
			if wasPlain && !plaintextLeft() {
				t.Error("a refused start sealed the plaintext row")
			}
		})
	}
	if plaintextLeft() {
		t.Errorf("account %d is still in plaintext after a start with the key", plainID)
	}
}
