package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// Account is an upstream AI account as the admin API shows it. The credential itself is
// never read by these queries: HasCredential says whether one is set, CredentialFP which.
type Account struct {
	ID               int64
	Name             string
	Platform         string // openai | anthropic
	BaseURL          string
	HasCredential    bool
	CredentialFP     string // credentials.Fingerprint of the api_key; "" without one
	Concurrency      int
	Priority         int // lower is preferred
	Status           string
	GroupIDs         []int64
	ModelMapping     map[string]string
	RateLimitedUntil *time.Time
	OverloadedUntil  *time.Time
	PausedUntil      *time.Time
	PauseReason      string
	DisabledReason   string               // why the health rules disabled it; "" otherwise
	ForbiddenAt      []time.Time          // recent upstream 403s, oldest first; nil when none
	ModelBlocks      map[string]time.Time // upstream model → blocked until, expired ones included; nil when none
	LastUsedAt       *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
	Headers          map[string]string // fixed upstream headers (account_headers.go); nil when none
}

// NewAccount is the input of CreateAccount.
type NewAccount struct {
	Name         string
	Platform     string
	BaseURL      string
	APIKey       string // upstream credential, write-only
	Concurrency  int
	Priority     int
	Status       string
	GroupIDs     []int64
	ModelMapping map[string]string
	Headers      map[string]string // fixed upstream headers; nil = none
}

// AccountPatch lists the fields to change; nil leaves a field as it is.
type AccountPatch struct {
	Name         *string
	Platform     *string
	BaseURL      *string
	APIKey       *string
	Concurrency  *int
	Priority     *int
	Status       *string
	GroupIDs     *[]int64 // replaces the whole membership
	ModelMapping *map[string]string
	Headers      *map[string]string // replaces all fixed headers
}

// credential is the JSON sealed in accounts.credential_ciphertext (credentials.go).
type credential struct {
	APIKey string `json:"api_key"`
}

const accountColumns = `
a.id, a.name, a.platform, a.base_url,
a.credential_ciphertext IS NOT NULL OR COALESCE(a.credential->>'api_key', '') <> '', a.credential_fingerprint,
a.concurrency, a.priority, a.status,
ARRAY(SELECT ag.group_id FROM account_groups ag WHERE ag.account_id = a.id ORDER BY ag.group_id),
a.model_mapping, a.rate_limited_until, a.overloaded_until, a.paused_until, a.pause_reason,
a.disabled_reason, a.forbidden_at,
ARRAY(SELECT b.model FROM account_model_blocks b WHERE b.account_id = a.id ORDER BY b.model),
ARRAY(SELECT b.blocked_until FROM account_model_blocks b WHERE b.account_id = a.id ORDER BY b.model),
a.last_used_at, a.created_at, a.updated_at,
NULLIF(a.headers, '{}'::jsonb)`

const (
	sqlInsertAccount = `
INSERT INTO accounts (name, platform, base_url, credential, concurrency, priority, status, model_mapping)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id`

	sqlGetAccount   = `SELECT ` + accountColumns + ` FROM accounts a WHERE a.id = $1 AND a.deleted_at IS NULL`
	sqlListAccounts = `SELECT ` + accountColumns + ` FROM accounts a WHERE a.deleted_at IS NULL AND a.id > $1 ORDER BY a.id LIMIT $2`
	sqlAccountIDs   = `SELECT id FROM accounts WHERE deleted_at IS NULL ORDER BY id`

	sqlLockAccount = `SELECT platform FROM accounts WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`
	sqlAccountGIDs = `SELECT group_id FROM account_groups WHERE account_id = $1`

	// A new credential clears a pause: the operator has just fixed what paused it (401/403).
	// Setting the status is the operator's decision: it drops the health rules' reason, and
	// setting it active also forgets the 403 strikes (docs/design.md, "Account health").
	sqlUpdateAccount = `
UPDATE accounts SET
    name          = COALESCE($2, name),
    platform      = COALESCE($3, platform),
    base_url      = COALESCE($4, base_url),
    credential    = COALESCE($5::jsonb, credential),
    concurrency   = COALESCE($6, concurrency),
    priority      = COALESCE($7, priority),
    status        = COALESCE($8, status),
    model_mapping = COALESCE($9::jsonb, model_mapping),
    paused_until  = CASE WHEN $5::jsonb IS NULL THEN paused_until ELSE NULL END,
    pause_reason  = CASE WHEN $5::jsonb IS NULL THEN pause_reason ELSE '' END,
    disabled_reason = CASE WHEN $8::text IS NULL THEN disabled_reason ELSE '' END,
    forbidden_at  = CASE WHEN $8::text = 'active' THEN '{}' ELSE forbidden_at END,
    updated_at    = now()
WHERE id = $1`

	sqlDeleteAccount = `UPDATE accounts SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL`

	sqlClearAccountGroups = `DELETE FROM account_groups WHERE account_id = $1`
	sqlAddAccountGroups   = `INSERT INTO account_groups (account_id, group_id) SELECT $1, unnest($2::bigint[])`
)

func scanAccount(row pgx.Row) (Account, error) {
	var a Account
	var blockedModels []string
	var blockedUntil []time.Time
	err := row.Scan(&a.ID, &a.Name, &a.Platform, &a.BaseURL, &a.HasCredential, &a.CredentialFP,
		&a.Concurrency, &a.Priority, &a.Status, &a.GroupIDs,
		&a.ModelMapping, &a.RateLimitedUntil, &a.OverloadedUntil, &a.PausedUntil, &a.PauseReason,
		&a.DisabledReason, &a.ForbiddenAt, &blockedModels, &blockedUntil,
		&a.LastUsedAt, &a.CreatedAt, &a.UpdatedAt,
		&a.Headers)
	if a.ModelMapping == nil {
		a.ModelMapping = map[string]string{}
	}
	if len(a.ForbiddenAt) == 0 {
		a.ForbiddenAt = nil
	}
	if len(blockedModels) > 0 && len(blockedModels) == len(blockedUntil) {
		a.ModelBlocks = make(map[string]time.Time, len(blockedModels))
		for i, m := range blockedModels {
			a.ModelBlocks[m] = blockedUntil[i]
		}
	}
	return a, err
}

// CreateAccount inserts the account and its group memberships in one transaction. Unknown
// groups, or groups of another platform, are an InvalidError on group_ids.
func (s *Store) CreateAccount(ctx context.Context, n NewAccount) (Account, error) {
	groupIDs := uniqueIDs(n.GroupIDs)
	mapping := n.ModelMapping
	if mapping == nil {
		mapping = map[string]string{}
	}
	var out Account
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		if err := checkAccountGroups(ctx, tx, n.Platform, groupIDs); err != nil {
			return err
		}
		var id int64
		err := tx.QueryRow(ctx, sqlInsertAccount, n.Name, n.Platform, n.BaseURL, emptyCredential,
			n.Concurrency, n.Priority, n.Status, mapping).Scan(&id)
		if err != nil {
			return fmt.Errorf("inserting account: %w", err)
		}
		if n.APIKey != "" { // sealed once the id, its additional data, is known
			if err := s.sealCredential(ctx, tx, id, n.APIKey); err != nil {
				return err
			}
		}
		if err := setAccountGroups(ctx, tx, id, groupIDs); err != nil {
			return err
		}
		if len(n.Headers) > 0 {
			if err := setAccountHeaders(ctx, tx, id, n.Headers); err != nil {
				return err
			}
		}
		out, err = scanAccount(tx.QueryRow(ctx, sqlGetAccount, id))
		return err
	})
	if err != nil {
		return Account{}, fmt.Errorf("creating account: %w", err)
	}
	return out, nil
}

// GetAccount returns the account with that id unless it was deleted.
func (s *Store) GetAccount(ctx context.Context, id int64) (Account, error) {
	a, err := scanAccount(s.Pool.QueryRow(ctx, sqlGetAccount, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, &NotFoundError{Resource: "account", ID: id}
	}
	if err != nil {
		return Account{}, fmt.Errorf("reading account %d: %w", id, err)
	}
	return a, nil
}

// ListAccounts returns a page of the accounts not deleted, oldest first (Page).
func (s *Store) ListAccounts(ctx context.Context, p Page) ([]Account, error) {
	rows, err := s.Pool.Query(ctx, sqlListAccounts, p.after(0), p.fetch())
	if err != nil {
		return nil, fmt.Errorf("listing accounts: %w", err)
	}
	accounts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) { return scanAccount(r) })
	if err != nil {
		return nil, fmt.Errorf("listing accounts: %w", err)
	}
	return accounts, nil
}

// AccountIDs returns the ids of every account not deleted, ascending.
func (s *Store) AccountIDs(ctx context.Context) ([]int64, error) {
	return collectIDs(ctx, s, sqlAccountIDs, "accounts")
}

// UpdateAccount applies p in one transaction. When the platform or the groups change, the
// resulting membership is checked as in CreateAccount.
func (s *Store) UpdateAccount(ctx context.Context, id int64, p AccountPatch) (Account, error) {
	var out Account
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		var platform string
		err := tx.QueryRow(ctx, sqlLockAccount, id).Scan(&platform)
		if errors.Is(err, pgx.ErrNoRows) {
			return &NotFoundError{Resource: "account", ID: id}
		}
		if err != nil {
			return fmt.Errorf("locking account: %w", err)
		}
		if p.Platform != nil {
			platform = *p.Platform
		}
		var groupIDs []int64
		if p.GroupIDs != nil {
			groupIDs = uniqueIDs(*p.GroupIDs)
		} else if p.Platform != nil {
			rows, err := tx.Query(ctx, sqlAccountGIDs, id)
			if err != nil {
				return fmt.Errorf("reading account groups: %w", err)
			}
			if groupIDs, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
				return fmt.Errorf("reading account groups: %w", err)
			}
		}
		if p.GroupIDs != nil || p.Platform != nil {
			if err := checkAccountGroups(ctx, tx, platform, groupIDs); err != nil {
				return err
			}
		}
		var cred, mapping any // untyped nil → SQL NULL → COALESCE keeps the column
		if p.APIKey != nil {
			cred = emptyCredential // sealed below; a non-NULL value clears the pause
		}
		if p.ModelMapping != nil {
			m := *p.ModelMapping
			if m == nil {
				m = map[string]string{}
			}
			mapping = m
		}
		if _, err := tx.Exec(ctx, sqlUpdateAccount, id, p.Name, p.Platform, p.BaseURL, cred,
			p.Concurrency, p.Priority, p.Status, mapping); err != nil {
			return fmt.Errorf("updating account: %w", err)
		}
		if p.APIKey != nil {
			if err := s.sealCredential(ctx, tx, id, *p.APIKey); err != nil {
				return err
			}
		}
		if p.GroupIDs != nil {
			if err := setAccountGroups(ctx, tx, id, groupIDs); err != nil {
				return err
			}
		}
		if p.Headers != nil {
			if err := setAccountHeaders(ctx, tx, id, *p.Headers); err != nil {
				return err
			}
		}
		out, err = scanAccount(tx.QueryRow(ctx, sqlGetAccount, id))
		return err
	})
	if err != nil {
		return Account{}, fmt.Errorf("updating account %d: %w", id, err)
	}
	return out, nil
}

// DeleteAccount soft-deletes the account: it disappears from the API and from scheduling,
// while usage records keep pointing at it.
func (s *Store) DeleteAccount(ctx context.Context, id int64) error {
	tag, err := s.Pool.Exec(ctx, sqlDeleteAccount, id)
	if err != nil {
		return fmt.Errorf("deleting account %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return &NotFoundError{Resource: "account", ID: id}
	}
	return nil
}

// checkAccountGroups verifies that every group exists and serves the account's platform:
// an account in a group of another platform could never be scheduled.
func checkAccountGroups(ctx context.Context, tx pgx.Tx, platform string, groupIDs []int64) error {
	if len(groupIDs) == 0 {
		return nil
	}
	platforms, err := groupPlatforms(ctx, tx, groupIDs)
	if err != nil {
		return err
	}
	for _, gid := range groupIDs {
		gp, ok := platforms[gid]
		if !ok {
			return &InvalidError{Field: "group_ids", Message: fmt.Sprintf("group %d does not exist", gid)}
		}
		if gp != platform {
			return &InvalidError{Field: "group_ids", Message: fmt.Sprintf(
				"group %d is a %s group; the account's platform is %s", gid, gp, platform)}
		}
	}
	return nil
}

func setAccountGroups(ctx context.Context, tx pgx.Tx, accountID int64, groupIDs []int64) error {
	if _, err := tx.Exec(ctx, sqlClearAccountGroups, accountID); err != nil {
		return fmt.Errorf("clearing account groups: %w", err)
	}
	if len(groupIDs) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, sqlAddAccountGroups, accountID, groupIDs); err != nil {
		return fmt.Errorf("adding account groups: %w", err)
	}
	return nil
}

// uniqueIDs returns ids sorted without duplicates, never nil.
func uniqueIDs(ids []int64) []int64 {
	out := make([]int64, 0, len(ids))
	seen := make(map[int64]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
