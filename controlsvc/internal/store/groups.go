package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Group binds API keys to a platform and a pool of accounts, and sets the price multiplier.
type Group struct {
	ID             int64
	Name           string
	Platform       string // openai | anthropic
	RateMultiplier string // exact decimal text, e.g. "1.5"; NUMERIC(12,6) in the database
	Status         string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// groupColumns reads rate_multiplier as text so no float ever touches it.
const groupColumns = `id, name, platform, rate_multiplier::text, status, created_at, updated_at`

const (
	sqlInsertGroup = `
INSERT INTO groups (name, platform, rate_multiplier, status)
VALUES ($1, $2, $3::text::numeric, $4)
RETURNING ` + groupColumns

	sqlGetGroup   = `SELECT ` + groupColumns + ` FROM groups WHERE id = $1`
	sqlListGroups = `SELECT ` + groupColumns + ` FROM groups ORDER BY id`

	// sqlGroupPlatforms resolves group ids for reference checks.
	sqlGroupPlatforms = `SELECT id, platform FROM groups WHERE id = ANY($1)`
)

func scanGroup(row pgx.Row) (Group, error) {
	var g Group
	err := row.Scan(&g.ID, &g.Name, &g.Platform, &g.RateMultiplier, &g.Status, &g.CreatedAt, &g.UpdatedAt)
	return g, err
}

// CreateGroup inserts g (ID and timestamps are ignored). A duplicate name is a ConflictError.
func (s *Store) CreateGroup(ctx context.Context, g Group) (Group, error) {
	out, err := scanGroup(s.Pool.QueryRow(ctx, sqlInsertGroup, g.Name, g.Platform, g.RateMultiplier, g.Status))
	if pgCode(err) == pgUniqueViolation {
		return Group{}, &ConflictError{Message: fmt.Sprintf("a group named %q already exists", g.Name)}
	}
	if err != nil {
		return Group{}, fmt.Errorf("inserting group: %w", err)
	}
	return out, nil
}

// GetGroup returns the group with that id.
func (s *Store) GetGroup(ctx context.Context, id int64) (Group, error) {
	g, err := scanGroup(s.Pool.QueryRow(ctx, sqlGetGroup, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Group{}, &NotFoundError{Resource: "group", ID: id}
	}
	if err != nil {
		return Group{}, fmt.Errorf("reading group %d: %w", id, err)
	}
	return g, nil
}

// ListGroups returns every group, oldest first.
func (s *Store) ListGroups(ctx context.Context) ([]Group, error) {
	rows, err := s.Pool.Query(ctx, sqlListGroups)
	if err != nil {
		return nil, fmt.Errorf("listing groups: %w", err)
	}
	groups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Group, error) { return scanGroup(r) })
	if err != nil {
		return nil, fmt.Errorf("listing groups: %w", err)
	}
	return groups, nil
}

// groupPlatforms maps each existing id of ids to its group's platform.
func groupPlatforms(ctx context.Context, q pgx.Tx, ids []int64) (map[int64]string, error) {
	rows, err := q.Query(ctx, sqlGroupPlatforms, ids)
	if err != nil {
		return nil, fmt.Errorf("resolving groups: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]string, len(ids))
	for rows.Next() {
		var id int64
		var platform string
		if err := rows.Scan(&id, &platform); err != nil {
			return nil, fmt.Errorf("resolving groups: %w", err)
		}
		out[id] = platform
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("resolving groups: %w", err)
	}
	return out, nil
}
