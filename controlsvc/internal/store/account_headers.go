package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// An account's fixed headers (migration 0010; docs/design.md, "Forwarded headers") are set on every upstream request
// to it after the client headers the gateway forwards, next to its credential. The admin
// API validates them (adminapi/account_headers.go); the store keeps them as one JSON object.

const sqlSetAccountHeaders = `UPDATE accounts SET headers = $2, updated_at = now() WHERE id = $1`

// setAccountHeaders replaces the account's fixed headers within tx; nil or empty clears them.
func setAccountHeaders(ctx context.Context, tx pgx.Tx, accountID int64, headers map[string]string) error {
	if headers == nil {
		headers = map[string]string{}
	}
	if _, err := tx.Exec(ctx, sqlSetAccountHeaders, accountID, headers); err != nil {
		return fmt.Errorf("setting account headers: %w", err)
	}
	return nil
}
