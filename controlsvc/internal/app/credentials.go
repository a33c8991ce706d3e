package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/poolgate/poolgate/controlsvc/internal/config"
	"github.com/poolgate/poolgate/controlsvc/internal/credentials"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// prepareCredentials gives the store its keys and checks them against the database before
// anything is served (docs/design.md, "Credentials at rest"): controlsvc refuses to start
// without a key, or when rows are sealed under a key it was not given, and seals the rows an
// older version left in plaintext.
func prepareCredentials(ctx context.Context, st *store.Store, keys *credentials.Keyring, log *slog.Logger) error {
	st.SetCredentialKeys(keys)
	n, err := st.PrepareCredentials(ctx)
	var ke *store.CredentialKeyError
	switch {
	case errors.As(err, &ke) && keys == nil:
		return fmt.Errorf("%w: set %s (or %s) to the key they were encrypted with", err,
			config.EnvCredentialKey, config.EnvCredentialKeyFile)
	case errors.As(err, &ke):
		return fmt.Errorf("%w: %s has key id %s; set %s to the key they were encrypted with "+
			"(while rotating, set the old key as %s and run controlsvc rotate-credential-key)", err,
			config.EnvCredentialKey, keys.CurrentID(), config.EnvCredentialKey, config.EnvCredentialKeyPrevious)
	case errors.Is(err, store.ErrNoCredentialKey):
		return fmt.Errorf("%s (or %s) is required: the key that encrypts account credentials",
			config.EnvCredentialKey, config.EnvCredentialKeyFile)
	case err != nil:
		return fmt.Errorf("preparing account credentials: %w", err)
	}
	if n > 0 {
		log.Info("account credentials stored in plaintext were encrypted", "rows", n, "key_id", keys.CurrentID())
	}
	return nil
}
