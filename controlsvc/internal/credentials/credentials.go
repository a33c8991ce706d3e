// Package credentials encrypts the upstream accounts' credentials at rest (docs/design.md,
// "Credentials at rest"): AES-256-GCM under a 32-byte key given to controlsvc, each
// ciphertext bound to its account id, so that a database dump or a stolen backup holds no
// usable credential and a ciphertext copied onto another row does not decrypt.
package credentials

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// KeySize is the length of a credential key: AES-256.
const KeySize = 32

// keyIDLen is the length of a key id: the first 8 hex digits of the key's SHA-256. It names
// the key a row was sealed with; 32 bits of a hash say nothing useful about a 256-bit key.
const keyIDLen = 8

// additionalDataPrefix versions the GCM additional data, which binds a ciphertext to its row.
const additionalDataPrefix = "poolgate/account-credential/v1/"

// Errors of Open. Neither carries key material.
var (
	// ErrUnknownKey: the row was sealed under a key the keyring does not hold.
	ErrUnknownKey = errors.New("sealed under a key that is not configured")
	// ErrDecrypt: wrong key, wrong row, or the ciphertext or nonce was altered.
	ErrDecrypt = errors.New("ciphertext does not authenticate")
)

// Key is one parsed credential key.
type Key struct {
	id   string
	aead cipher.AEAD
}

// ID is the key id stored with every row sealed under the key.
func (k Key) ID() string { return k.id }

// ParseKey decodes a key given as standard base64 (with padding) of exactly 32 bytes, as
// `openssl rand -base64 32` prints it. Surrounding whitespace (a file's final newline) is
// ignored. The error never repeats the value.
func ParseKey(encoded string) (Key, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return Key{}, errors.New("not standard base64 (generate one with: openssl rand -base64 32)")
	}
	if len(raw) != KeySize {
		return Key{}, fmt.Errorf("decodes to %d bytes, want %d (generate one with: openssl rand -base64 32)", len(raw), KeySize)
	}
	return newKey(raw)
}

func newKey(raw []byte) (Key, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return Key{}, fmt.Errorf("creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return Key{}, fmt.Errorf("creating GCM: %w", err)
	}
	sum := sha256.Sum256(raw)
	return Key{id: hex.EncodeToString(sum[:])[:keyIDLen], aead: aead}, nil
}

// Sealed is a credential as stored: ciphertext with its tag, the random nonce, and the id
// of the key that sealed it.
type Sealed struct {
	Ciphertext []byte
	Nonce      []byte
	KeyID      string
}

// Keyring holds the current key, which seals, and optionally a previous one, which is only
// accepted for opening while a rotation is under way.
type Keyring struct {
	current  Key
	previous *Key
}

// NewKeyring returns a keyring sealing under current and opening under current and
// previous (nil: none).
func NewKeyring(current Key, previous *Key) *Keyring {
	if previous != nil && previous.id == current.id {
		previous = nil
	}
	return &Keyring{current: current, previous: previous}
}

// CurrentID is the id of the key new rows are sealed under.
func (kr *Keyring) CurrentID() string { return kr.current.id }

// PreviousID is the id of the previous key, "" when none.
func (kr *Keyring) PreviousID() string {
	if kr.previous == nil {
		return ""
	}
	return kr.previous.id
}

// Knows reports whether rows sealed under key id can be opened.
func (kr *Keyring) Knows(id string) bool {
	_, ok := kr.key(id)
	return ok
}

func (kr *Keyring) key(id string) (Key, bool) {
	if id == kr.current.id {
		return kr.current, true
	}
	if kr.previous != nil && id == kr.previous.id {
		return *kr.previous, true
	}
	return Key{}, false
}

// Seal encrypts plaintext for account accountID under the current key with a fresh nonce.
func (kr *Keyring) Seal(accountID int64, plaintext []byte) (Sealed, error) {
	nonce := make([]byte, kr.current.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, fmt.Errorf("drawing a nonce: %w", err)
	}
	ct := kr.current.aead.Seal(nil, nonce, plaintext, additionalData(accountID))
	return Sealed{Ciphertext: ct, Nonce: nonce, KeyID: kr.current.id}, nil
}

// Open decrypts what Seal returned for the same account id.
func (kr *Keyring) Open(accountID int64, s Sealed) ([]byte, error) {
	k, ok := kr.key(s.KeyID)
	if !ok {
		return nil, fmt.Errorf("key id %q: %w", s.KeyID, ErrUnknownKey)
	}
	if len(s.Nonce) != k.aead.NonceSize() {
		return nil, ErrDecrypt
	}
	pt, err := k.aead.Open(nil, s.Nonce, s.Ciphertext, additionalData(accountID))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// additionalData binds a ciphertext to its account row: moved to another row, it fails to
// authenticate.
func additionalData(accountID int64) []byte {
	return strconv.AppendInt([]byte(additionalDataPrefix), accountID, 10)
}

// Fingerprint is what the admin API shows of a credential: the first 8 hex digits of its
// SHA-256. An operator can tell which key an account holds (printf %s "$KEY" | sha256sum),
// and 32 bits of a hash of a high-entropy API key reveal nothing usable about it.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])[:8]
}
