package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/billing"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockKey is the pg_advisory_lock key that serialises migrations, so several
// controlsvc instances starting at once apply each migration exactly once. Arbitrary but
// fixed: the ASCII bytes of "poolgate".
const migrateLockKey int64 = 0x706f6f6c67617465

// lockReleaseTimeout bounds the unlock after a cancelled migration run.
const lockReleaseTimeout = 5 * time.Second

const (
	sqlCreateMigrationsTable = `
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT      PRIMARY KEY,
    name       TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`
	sqlAppliedVersions = `SELECT version FROM schema_migrations`
	sqlRecordMigration = `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`
	sqlLock            = `SELECT pg_advisory_lock($1)`
	// sqlMigrationSettings sets, for one migration's transaction: the billing time zone
	// (migration 0011 buckets the existing records by its days), and no statement_timeout,
	// as a backfill may outlast the bound of a request's statement; the start bound
	// (cmd/controlsvc) bounds migrating as a whole.
	sqlMigrationSettings = `SELECT set_config('poolgate.billing_timezone', $1, true), set_config('statement_timeout', '0', true)`
	sqlUnlock            = `SELECT pg_advisory_unlock($1)`
)

// migration is one numbered SQL file, e.g. migrations/0001_init.sql.
type migration struct {
	Version int64
	Name    string // file name, for messages and the schema_migrations row
	SQL     string
}

var migrationName = regexp.MustCompile(`^(\d+)_[a-z0-9_]+\.sql$`)

// Migrate applies the embedded migrations that are not yet recorded in schema_migrations,
// in version order, each in its own transaction.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrate(ctx, migrationFiles)
}

func (s *Store) migrate(ctx context.Context, files fs.FS) error {
	migrations, err := loadMigrations(files)
	if err != nil {
		return err
	}
	// The advisory lock belongs to a session, so every statement below runs on this one
	// connection.
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection for migrations: %w", err)
	}
	defer conn.Release()

	if _, err := conn.Exec(ctx, sqlLock, migrateLockKey); err != nil {
		return fmt.Errorf("taking migration lock: %w", err)
	}
	defer func() {
		// Unlock even when ctx is cancelled; a dead session would release it anyway.
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockReleaseTimeout)
		defer cancel()
		if _, err := conn.Exec(unlockCtx, sqlUnlock, migrateLockKey); err != nil {
			// Do not hand a connection that may still hold the lock back to the pool.
			_ = conn.Conn().Close(unlockCtx)
		}
	}()

	if _, err := conn.Exec(ctx, sqlCreateMigrationsTable); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	applied, err := appliedVersions(ctx, conn.Conn())
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if applied[m.Version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, sqlMigrationSettings, billing.Location().String()); err != nil {
				return err
			}
			// No arguments: pgx uses the simple protocol, so a file may hold many statements.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, sqlRecordMigration, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("applying migration %s: %w", m.Name, err)
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int64]bool, error) {
	rows, err := conn.Query(ctx, sqlAppliedVersions)
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	applied := make(map[int64]bool, len(versions))
	for _, v := range versions {
		applied[v] = true
	}
	return applied, nil
}

// loadMigrations reads migrations/*.sql from files, sorted by version. Malformed names and
// duplicate versions are errors, so a bad file fails every start instead of being skipped.
func loadMigrations(files fs.FS) ([]migration, error) {
	names, err := fs.Glob(files, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	var out []migration
	seen := map[int64]string{}
	for _, p := range names {
		name := path.Base(p)
		match := migrationName.FindStringSubmatch(name)
		if match == nil {
			return nil, fmt.Errorf("migration %s: name must look like 0001_description.sql", name)
		}
		version, err := strconv.ParseInt(match[1], 10, 64)
		if err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: version must be a positive number", name)
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, name, version)
		}
		seen[version] = name
		body, err := fs.ReadFile(files, p)
		if err != nil {
			return nil, fmt.Errorf("reading migration %s: %w", name, err)
		}
		out = append(out, migration{Version: version, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}
