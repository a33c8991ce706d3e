package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// Domain errors of the admin CRUD. The HTTP layer maps them to statuses; their messages are
// written for API clients and never contain credentials or SQL.

// NotFoundError means the row does not exist or was (soft-)deleted.
type NotFoundError struct {
	Resource string // "user", "group", "account", "api key"
	ID       int64
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %d not found", e.Resource, e.ID) }

// ConflictError means the change collides with existing data, e.g. a duplicate name.
type ConflictError struct{ Message string }

func (e *ConflictError) Error() string { return e.Message }

// InvalidError means an input is well-formed but refers to something that cannot be used,
// e.g. an unknown group id. Field is the JSON name of the offending input.
type InvalidError struct {
	Field   string
	Message string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Message }

// PostgreSQL SQLSTATE codes the CRUD code reacts to.
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
)

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
