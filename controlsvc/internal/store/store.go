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
// statement_timeout, or options=-c statement_timeout=…); docs/design.md, "Timeouts". Queries are bounded by their
// context too; these catch the work that has none (a lock wait in a detached cleanup, a
// sweep) and a server that stops answering.
const (
	DefaultConnectTimeout   = 5 * time.Second
	DefaultStatementTimeout = 60 * time.Second
)

// Open connects to PostgreSQL and checks the connection.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing database url: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	params := cfg.ConnConfig.RuntimeParams
	if _, ok := params["statement_timeout"]; !ok && !strings.Contains(params["options"], "statement_timeout") {
		params["statement_timeout"] = strconv.FormatInt(DefaultStatementTimeout.Milliseconds(), 10)
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
