package credentials

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func mustKey(t *testing.T, fill byte) Key {
	t.Helper()
	k, err := ParseKey(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{7}, KeySize)
	good := base64.StdEncoding.EncodeToString(raw)
	sum := sha256.Sum256(raw)
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{"base64 of 32 bytes", good, ""},
		{"final newline of a key file", good + "\n", ""},
		{"hex is not base64 of 32 bytes", hex.EncodeToString(raw), "want 32"},
		{"16 bytes", base64.StdEncoding.EncodeToString(raw[:16]), "decodes to 16 bytes"},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(raw, 1)), "decodes to 33 bytes"},
		{"unpadded", base64.RawStdEncoding.EncodeToString(raw), "not standard base64"},
		{"not base64", "correct horse battery staple", "not standard base64"},
		{"empty", "", "decodes to 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := ParseKey(tt.give)
			if tt.wantErr == "" {
				if err != nil || k.ID() != hex.EncodeToString(sum[:4]) {
					t.Fatalf("ParseKey = id %q, %v; want id %x", k.ID(), err, sum[:4])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseKey error = %v, want %q", err, tt.wantErr)
			}
			if tt.give != "" && strings.Contains(err.Error(), tt.give) {
				t.Errorf("error %q repeats the value", err)
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	a, b := mustKey(t, 1), mustKey(t, 2)
	secret := []byte(`{"api_key":"sk-live-0123456789"}`)
	sealed, err := NewKeyring(a, nil).Seal(42, secret)
	if err != nil {
		t.Fatal(err)
	}
	if sealed.KeyID != a.ID() || bytes.Contains(sealed.Ciphertext, []byte("sk-live")) || len(sealed.Nonce) != 12 {
		t.Fatalf("sealed = %+v", sealed)
	}
	flip := func(p []byte, i int) []byte {
		c := bytes.Clone(p)
		c[i] ^= 1
		return c
	}
	tests := []struct {
		name    string
		ring    *Keyring
		id      int64
		give    Sealed
		wantErr error
	}{
		{"round trip", NewKeyring(a, nil), 42, sealed, nil},
		{"old key still accepted as previous", NewKeyring(b, &a), 42, sealed, nil},
		{"wrong key", NewKeyring(b, nil), 42, sealed, ErrUnknownKey},
		{"wrong key under the right id", NewKeyring(b, nil), 42, Sealed{sealed.Ciphertext, sealed.Nonce, b.ID()}, ErrDecrypt},
		{"other row (additional data)", NewKeyring(a, nil), 43, sealed, ErrDecrypt},
		{"tampered ciphertext", NewKeyring(a, nil), 42, Sealed{flip(sealed.Ciphertext, 0), sealed.Nonce, a.ID()}, ErrDecrypt},
		{"tampered tag", NewKeyring(a, nil), 42, Sealed{flip(sealed.Ciphertext, len(sealed.Ciphertext)-1), sealed.Nonce, a.ID()}, ErrDecrypt},
		{"tampered nonce", NewKeyring(a, nil), 42, Sealed{sealed.Ciphertext, flip(sealed.Nonce, 3), a.ID()}, ErrDecrypt},
		{"short nonce", NewKeyring(a, nil), 42, Sealed{sealed.Ciphertext, sealed.Nonce[:4], a.ID()}, ErrDecrypt},
		{"truncated", NewKeyring(a, nil), 42, Sealed{sealed.Ciphertext[:5], sealed.Nonce, a.ID()}, ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.ring.Open(tt.id, tt.give)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && !bytes.Equal(got, secret) {
				t.Fatalf("Open = %q, want %q", got, secret)
			}
		})
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	t.Parallel()
	kr := NewKeyring(mustKey(t, 1), nil)
	x, _ := kr.Seal(1, []byte("same"))
	y, _ := kr.Seal(1, []byte("same"))
	if bytes.Equal(x.Nonce, y.Nonce) || bytes.Equal(x.Ciphertext, y.Ciphertext) {
		t.Fatal("two seals of the same plaintext are equal: the nonce is not fresh")
	}
}

func TestKeyring(t *testing.T) {
	t.Parallel()
	a, b := mustKey(t, 1), mustKey(t, 2)
	kr := NewKeyring(b, &a)
	if kr.CurrentID() != b.ID() || kr.PreviousID() != a.ID() || !kr.Knows(a.ID()) || !kr.Knows(b.ID()) || kr.Knows("00000000") {
		t.Errorf("keyring b+a: current %s previous %s", kr.CurrentID(), kr.PreviousID())
	}
	if same := NewKeyring(a, &a); same.PreviousID() != "" {
		t.Errorf("previous equal to current is kept: %q", same.PreviousID())
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("sk-upstream-secret"))
	if got := Fingerprint("sk-upstream-secret"); got != hex.EncodeToString(sum[:4]) || strings.Contains("sk-upstream-secret", got) {
		t.Errorf("Fingerprint = %q", got)
	}
}
