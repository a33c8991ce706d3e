package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// API key format: a fixed prefix plus 24 random bytes in hex.
const (
	APIKeyPrefix      = "sk-pg-"
	apiKeyRandomBytes = 24 // 48 hex characters
	// apiKeyShownChars is how much of a key operators see after creation (key_prefix):
	// enough to tell keys apart, far too little to guess the rest.
	apiKeyShownChars = len(APIKeyPrefix) + 6
)

// APIKey is a client key as stored: only its hash and a short prefix, never the key.
type APIKey struct {
	ID        int64
	UserID    int64
	GroupID   int64
	Name      string
	KeyPrefix string
	Status    string
	// QuotaMicros caps the key's spend (QuotaUsedMicros); nil = no quota.
	QuotaMicros *int64
	// QuotaUsedMicros is what the key spent while it had a quota; QuotaReservedMicros is
	// held by its requests in flight against the quota: the holds live in Redis, so the
	// store reads it as 0 and the admin API adds the holds (adminapi/wallets.go).
	QuotaUsedMicros     int64
	QuotaReservedMicros int64
	ExpiresAt           *time.Time // nil = never
	LastUsedAt          *time.Time
	CreatedAt           time.Time
}

// NewAPIKey is a key to create.
type NewAPIKey struct {
	UserID      int64
	GroupID     int64
	Name        string
	Status      string // "" = active
	QuotaMicros *int64
	ExpiresAt   *time.Time
}

// APIKeyPatch lists the fields to change; nil (or an unset patch) leaves a field as it is.
type APIKeyPatch struct {
	Name      *string
	Status    *string
	Quota     MicrosPatch
	ExpiresAt TimePatch
}

// TimePatch changes a nullable timestamp column when Set: to At, or to NULL when At is nil.
type TimePatch struct {
	Set bool
	At  *time.Time
}

const apiKeyColumns = `id, user_id, group_id, name, key_prefix, status, quota_micros, quota_used_micros,
expires_at, last_used_at, created_at`

const (
	sqlInsertAPIKey = `
INSERT INTO api_keys (user_id, group_id, name, key_hash, key_prefix, status, quota_micros, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING ` + apiKeyColumns

	sqlUserExists  = `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`
	sqlGroupExists = `SELECT EXISTS (SELECT 1 FROM groups WHERE id = $1)`

	// $1 = 0 lists every user's keys.
	sqlListAPIKeys = `
SELECT ` + apiKeyColumns + ` FROM api_keys
WHERE deleted_at IS NULL AND ($1::bigint = 0 OR user_id = $1) AND id > $2
ORDER BY id LIMIT $3`

	sqlDeleteAPIKey = `UPDATE api_keys SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL`

	sqlGetAPIKey = `SELECT ` + apiKeyColumns + ` FROM api_keys WHERE id = $1 AND deleted_at IS NULL`

	sqlUpdateAPIKey = `
UPDATE api_keys SET
    name         = COALESCE($2, name),
    status       = COALESCE($3, status),
    quota_micros = CASE WHEN $4::boolean THEN $5::bigint ELSE quota_micros END,
    expires_at   = CASE WHEN $6::boolean THEN $7::timestamptz ELSE expires_at END
WHERE id = $1 AND deleted_at IS NULL
RETURNING ` + apiKeyColumns
)

// HashAPIKey is the stored form of a key: hex SHA-256. Admission looks keys up by it.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// generateAPIKey returns a new random key.
func generateAPIKey() (string, error) {
	b := make([]byte, apiKeyRandomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return APIKeyPrefix + hex.EncodeToString(b), nil
}

func scanAPIKey(row pgx.Row) (APIKey, error) {
	var k APIKey
	err := row.Scan(&k.ID, &k.UserID, &k.GroupID, &k.Name, &k.KeyPrefix, &k.Status, &k.QuotaMicros, &k.QuotaUsedMicros,
		&k.ExpiresAt, &k.LastUsedAt, &k.CreatedAt)
	return k, err
}

// CreateAPIKey makes a key for the user in the group. The returned string is the key
// itself; it is not stored and cannot be recovered later.
func (s *Store) CreateAPIKey(ctx context.Context, n NewAPIKey) (APIKey, string, error) {
	userID, groupID := n.UserID, n.GroupID
	if n.Status == "" {
		n.Status = "active"
	}
	key, err := generateAPIKey()
	if err != nil {
		return APIKey{}, "", fmt.Errorf("creating api key: %w", err)
	}
	var out APIKey
	err = s.WithTx(ctx, func(tx pgx.Tx) error {
		if err := mustExist(ctx, tx, sqlUserExists, userID, "user_id", "user"); err != nil {
			return err
		}
		if err := mustExist(ctx, tx, sqlGroupExists, groupID, "group_id", "group"); err != nil {
			return err
		}
		out, err = scanAPIKey(tx.QueryRow(ctx, sqlInsertAPIKey, userID, groupID, n.Name, HashAPIKey(key), key[:apiKeyShownChars],
			n.Status, n.QuotaMicros, n.ExpiresAt))
		return err
	})
	if err != nil {
		return APIKey{}, "", fmt.Errorf("creating api key: %w", err)
	}
	return out, key, nil
}

// ListAPIKeys returns a page of the keys not deleted, of one user or (userID 0) of
// everyone, oldest first (Page).
func (s *Store) ListAPIKeys(ctx context.Context, userID int64, p Page) ([]APIKey, error) {
	rows, err := s.Pool.Query(ctx, sqlListAPIKeys, userID, p.after(0), p.fetch())
	if err != nil {
		return nil, fmt.Errorf("listing api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) { return scanAPIKey(r) })
	if err != nil {
		return nil, fmt.Errorf("listing api keys: %w", err)
	}
	return keys, nil
}

// GetAPIKey returns the key with that id, unless deleted.
func (s *Store) GetAPIKey(ctx context.Context, id int64) (APIKey, error) {
	k, err := scanAPIKey(s.Pool.QueryRow(ctx, sqlGetAPIKey, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return APIKey{}, &NotFoundError{Resource: "api key", ID: id}
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("reading api key %d: %w", id, err)
	}
	return k, nil
}

// UpdateAPIKey applies p to the key (not deleted) and returns the result. A new quota
// applies to the next admission; requests in flight keep what they reserved.
func (s *Store) UpdateAPIKey(ctx context.Context, id int64, p APIKeyPatch) (APIKey, error) {
	k, err := scanAPIKey(s.Pool.QueryRow(ctx, sqlUpdateAPIKey, id, p.Name, p.Status,
		p.Quota.Set, p.Quota.Micros, p.ExpiresAt.Set, p.ExpiresAt.At))
	if errors.Is(err, pgx.ErrNoRows) {
		return APIKey{}, &NotFoundError{Resource: "api key", ID: id}
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("updating api key %d: %w", id, err)
	}
	return k, nil
}

// DeleteAPIKey soft-deletes the key; admission stops accepting it.
func (s *Store) DeleteAPIKey(ctx context.Context, id int64) error {
	tag, err := s.Pool.Exec(ctx, sqlDeleteAPIKey, id)
	if err != nil {
		return fmt.Errorf("deleting api key %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return &NotFoundError{Resource: "api key", ID: id}
	}
	return nil
}

// mustExist turns a missing referenced row into an InvalidError on field: the client sent
// a bad id in its body, which is a 400, not a 404 of the resource being created.
func mustExist(ctx context.Context, tx pgx.Tx, query string, id int64, field, what string) error {
	var ok bool
	if err := tx.QueryRow(ctx, query, id).Scan(&ok); err != nil {
		return fmt.Errorf("checking %s %d: %w", what, id, err)
	}
	if !ok {
		return &InvalidError{Field: field, Message: fmt.Sprintf("%s %d does not exist", what, id)}
	}
	return nil
}

const sqlExistingKeyHashes = `SELECT key_hash FROM api_keys WHERE key_hash = ANY($1) AND deleted_at IS NULL`

// ExistingKeyHashes returns which of hashes belong to a key not deleted. Admission asks it
// for many unknown keys in one query (admission keyprobe.go), so that random keys do not
// each cost one.
func (s *Store) ExistingKeyHashes(ctx context.Context, hashes []string) (map[string]bool, error) {
	rows, err := s.Pool.Query(ctx, sqlExistingKeyHashes, hashes)
	if err != nil {
		return nil, fmt.Errorf("looking up %d key hashes: %w", len(hashes), err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("looking up %d key hashes: %w", len(hashes), err)
	}
	out := make(map[string]bool, len(found))
	for _, h := range found {
		out[h] = true
	}
	return out, nil
}
