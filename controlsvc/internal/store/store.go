// Package store owns poolgate's PostgreSQL access: the connection pool, the embedded
// migrations and the SQL for each table.
package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/poolgate/poolgate/controlsvc/internal/credentials"
)

// Store is the PostgreSQL handle shared by the control service's packages.
type Store struct {
	Pool *pgxpool.Pool
	keys *credentials.Keyring // seals and opens account credentials (credentials.go)
}

// Bounds of every connection unless the database URL sets its own (connect_timeout;
// statement_timeout or idle_in_transaction_session_timeout as parameters or in options=-c …);
// docs/design.md, "Timeouts". Queries are bounded by their context too; these catch the work
// that has none (a lock wait in a detached cleanup, a sweep), a statement that runs away
// and a transaction left open, and a server that stops answering.
const (
	DefaultConnectTimeout = 5 * time.Second
	// DefaultStatementTimeout is below the route write bound (60s): no statement outlives
	// the reply it serves.
	DefaultStatementTimeout = 30 * time.Second
	// DefaultIdleInTransactionTimeout ends a session whose transaction waits between
	// statements that long (no code of ours does: a stalled process), releasing its row
	// locks (users' balances) before the statements waiting for them time out.
	DefaultIdleInTransactionTimeout = 10 * time.Second
)

// Bounds are the session limits Open sets on every connection; zero fields take the
// defaults above.
type Bounds struct {
	Statement         time.Duration // statement_timeout
	IdleInTransaction time.Duration // idle_in_transaction_session_timeout
}

// Open connects to PostgreSQL with the default bounds and checks the connection.
func Open(ctx context.Context, url string) (*Store, error) {
	return OpenWith(ctx, url, Bounds{})
}

// OpenWith connects to PostgreSQL with bounds b (where the URL sets none) and checks the
// connection.
func OpenWith(ctx context.Context, url string, b Bounds) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing database url: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	params := cfg.ConnConfig.RuntimeParams
	for _, p := range []struct {
		name   string
		d, def time.Duration
	}{
		{"statement_timeout", b.Statement, DefaultStatementTimeout},
		{"idle_in_transaction_session_timeout", b.IdleInTransaction, DefaultIdleInTransactionTimeout},
	} {
		if _, ok := params[p.name]; ok || strings.Contains(params["options"], p.name) {
			continue // the URL's own
		}
		if p.d <= 0 {
			p.d = p.def
		}
		params[p.name] = strconv.FormatInt(p.d.Milliseconds(), 10)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening database pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	return &Store{Pool: pool}, nil
}

// Close releases the pool.
func (s *Store) Close() { s.Pool.Close() }

// WithTx runs fn in one transaction: committed when fn returns nil, rolled back otherwise.
// Handlers never call Begin themselves.
func (s *Store) WithTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.Pool, fn)
}
