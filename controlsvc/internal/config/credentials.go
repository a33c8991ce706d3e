package config

import (
	"fmt"
	"os"
	"strings"

	"github.com/poolgate/poolgate/controlsvc/internal/credentials"
)

// The credential key encrypts the accounts' upstream credentials at rest (docs/design.md,
// "Credentials at rest"): standard base64 of 32 bytes (`openssl rand -base64 32`), given
// directly or as a file holding it. The previous key is accepted for decrypting only, while
// `controlsvc rotate-credential-key` re-encrypts the rows under the current one.
const (
	EnvCredentialKey             = "POOLGATE_CREDENTIAL_KEY"
	EnvCredentialKeyFile         = "POOLGATE_CREDENTIAL_KEY_FILE"
	EnvCredentialKeyPrevious     = "POOLGATE_CREDENTIAL_KEY_PREVIOUS"
	EnvCredentialKeyPreviousFile = "POOLGATE_CREDENTIAL_KEY_PREVIOUS_FILE"
)

// CredentialKeysFromEnv reads the current key (required: controlsvc never stores a
// credential in plaintext) and the optional previous one. Errors name the variable and
// never repeat a key.
func CredentialKeysFromEnv() (*credentials.Keyring, error) {
	current, err := keyFromEnv(EnvCredentialKey, EnvCredentialKeyFile)
	if err != nil {
		return nil, err
	}
	if current == nil {
		return nil, fmt.Errorf("%s (or %s) is required: the key that encrypts account credentials, "+
			"standard base64 of 32 bytes (openssl rand -base64 32)", EnvCredentialKey, EnvCredentialKeyFile)
	}
	previous, err := keyFromEnv(EnvCredentialKeyPrevious, EnvCredentialKeyPreviousFile)
	if err != nil {
		return nil, err
	}
	return credentials.NewKeyring(*current, previous), nil
}

// keyFromEnv parses the key in env, or in the file fileEnv names (secretFromEnv); nil when
// neither is set.
func keyFromEnv(env, fileEnv string) (*credentials.Key, error) {
	value, name, err := secretFromEnv(env, fileEnv)
	if err != nil || name == "" {
		return nil, err
	}
	k, err := credentials.ParseKey(value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &k, nil
}

// Rotation is what `controlsvc rotate-credential-key` needs: the database and the keys.
type Rotation struct {
	DatabaseURL string
	Keys        *credentials.Keyring
}

// RotationFromEnv reads the rotation command's settings; the rest of the service's
// configuration is not needed and not checked.
func RotationFromEnv() (Rotation, error) {
	r := Rotation{DatabaseURL: strings.TrimSpace(os.Getenv(EnvDatabaseURL))}
	if r.DatabaseURL == "" {
		return Rotation{}, missing(EnvDatabaseURL)
	}
	keys, err := CredentialKeysFromEnv()
	if err != nil {
		return Rotation{}, err
	}
	r.Keys = keys
	return r, nil
}
