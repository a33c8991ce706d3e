package config

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// PostgreSQL session bounds (docs/design.md, "Timeouts"). A statement_timeout or
// idle_in_transaction_session_timeout in POOLGATE_DATABASE_URL wins over these.
const (
	EnvDBStatementTimeout         = "POOLGATE_DB_STATEMENT_TIMEOUT"
	EnvDBIdleInTransactionTimeout = "POOLGATE_DB_IDLE_IN_TRANSACTION_TIMEOUT"

	// The store's own defaults (store.DefaultStatementTimeout,
	// store.DefaultIdleInTransactionTimeout); app's TestConfigDefaultsAreThePackages keeps
	// them equal.
	DefaultDBStatementTimeout         = 30 * time.Second
	DefaultDBIdleInTransactionTimeout = 10 * time.Second
)

// DBBounds are the PostgreSQL session bounds; app hands them to store.OpenWith as
// DBBounds.
type DBBounds struct {
	Statement         time.Duration // statement_timeout
	IdleInTransaction time.Duration // idle_in_transaction_session_timeout
}

// dbBoundsFromEnv reads the PostgreSQL session bounds; each must be a positive duration
// of at least a millisecond (PostgreSQL counts them in milliseconds, and 0 would turn the
// bound off).
func dbBoundsFromEnv() (DBBounds, error) {
	b := DBBounds{Statement: DefaultDBStatementTimeout, IdleInTransaction: DefaultDBIdleInTransactionTimeout}
	for _, v := range []struct {
		env string
		d   *time.Duration
	}{
		{EnvDBStatementTimeout, &b.Statement},
		{EnvDBIdleInTransactionTimeout, &b.IdleInTransaction},
	} {
		raw := strings.TrimSpace(os.Getenv(v.env))
		if raw == "" {
			continue
		}
		d, err := time.ParseDuration(raw)
		if err != nil || d < time.Millisecond {
			return DBBounds{}, fmt.Errorf("%s: %q is not a duration of at least 1ms (e.g. 30s)", v.env, raw)
		}
		*v.d = d
	}
	return b, nil
}
