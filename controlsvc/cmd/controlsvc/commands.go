package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/config"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

const commandUsage = `usage: controlsvc [command]

Without a command, controlsvc serves (configured from the environment).

Commands:
  rotate-credential-key   re-encrypt every account credential under POOLGATE_CREDENTIAL_KEY,
                          opening those under POOLGATE_CREDENTIAL_KEY_PREVIOUS (docs/design.md,
                          "Credentials at rest"); reads POOLGATE_DATABASE_URL and the keys only
`

// rotateTimeout bounds a whole rotation run; each batch is its own transaction, so a run
// cut short is resumed by running the command again.
const rotateTimeout = 10 * time.Minute

// runCommand runs the maintenance command args[0] and returns the process's exit code.
func runCommand(args []string, stdout, stderr io.Writer) int {
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, commandUsage)
		return 0
	case "rotate-credential-key":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "controlsvc rotate-credential-key takes no arguments\n\n%s", commandUsage)
			return exitConfig
		}
		r, err := config.RotationFromEnv()
		if err != nil {
			fmt.Fprintf(stderr, "controlsvc rotate-credential-key: configuration error: %v\n", err)
			return exitConfig
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		ctx, cancel := context.WithTimeout(ctx, rotateTimeout)
		defer cancel()
		if err := rotateCredentialKey(ctx, r, stdout); err != nil {
			fmt.Fprintf(stderr, "controlsvc rotate-credential-key: %v\n", err)
			return exitRuntime
		}
		return 0
	default:
		fmt.Fprintf(stderr, "controlsvc: unknown command %q\n\n%s", args[0], commandUsage)
		return exitConfig
	}
}

// rotateCredentialKey re-encrypts every account credential under the current key and
// prints how many rows it rewrote, also when it stops early (the rows done stay done).
func rotateCredentialKey(ctx context.Context, r config.Rotation, out io.Writer) error {
	st, err := store.Open(ctx, r.DatabaseURL)
	if err != nil {
		return fmt.Errorf("opening database: %w", err)
	}
	defer st.Close()
	st.SetCredentialKeys(r.Keys)
	res, err := st.RotateCredentials(ctx)
	fmt.Fprintf(out, "rotate-credential-key: %d account credentials re-encrypted under key id %s, %d encrypted from plaintext\n",
		res.Reencrypted, r.Keys.CurrentID(), res.Sealed)
	if err != nil {
		return err
	}
	if prev := r.Keys.PreviousID(); prev != "" {
		fmt.Fprintf(out, "rotate-credential-key: no credential needs key id %s any more: remove %s and restart controlsvc\n",
			prev, config.EnvCredentialKeyPrevious)
	}
	return nil
}
