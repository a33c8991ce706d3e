package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/controlsvc/internal/credentials"
)

// Account credentials are stored sealed (docs/design.md, "Credentials at rest"): the
// credential JSON ({"api_key": …}) encrypted under the store's keyring with the account id
// as additional data, in credential_ciphertext, credential_nonce and credential_key_id.
// accounts.credential, the plaintext column of older versions, is '{}' once a row is sealed.

// ErrNoCredentialKey: the store was given no keyring, so it can neither seal nor open.
var ErrNoCredentialKey = errors.New("no credential key configured")

// CredentialKeyError says that rows are sealed under keys the store was not given.
type CredentialKeyError struct {
	KeyIDs []string // the missing key ids, sorted
	Rows   int      // rows sealed under them
}

func (e *CredentialKeyError) Error() string {
	return fmt.Sprintf("%d account credentials are encrypted under key id %s, which is not configured",
		e.Rows, strings.Join(e.KeyIDs, ", "))
}

// credentialBatch is how many rows one transaction of a migration or rotation rewrites: a
// failure keeps the batches before it, and a rerun carries on from there.
const credentialBatch = 100

// emptyCredential is what accounts.credential holds once the credential is sealed.
var emptyCredential = struct{}{}

const (
	sqlSealedKeyIDs = `
SELECT credential_key_id, count(*) FROM accounts WHERE credential_key_id IS NOT NULL GROUP BY 1`

	sqlSealCredential = `
UPDATE accounts SET credential = '{}', credential_ciphertext = $2, credential_nonce = $3,
    credential_key_id = $4, credential_fingerprint = $5
WHERE id = $1`

	// Deleted accounts too: their rows are in every dump.
	sqlPlaintextCredentials = `
SELECT id, credential::text, COALESCE(credential->>'api_key', '') FROM accounts
WHERE credential <> '{}'::jsonb ORDER BY id LIMIT $1 FOR UPDATE`

	sqlCredentialsNotUnder = `
SELECT id, credential_ciphertext, credential_nonce, credential_key_id FROM accounts
WHERE credential_key_id <> $1 ORDER BY id LIMIT $2 FOR UPDATE`

	sqlRewriteCredentials = `
UPDATE accounts SET credential_ciphertext = $2, credential_nonce = $3, credential_key_id = $4 WHERE id = $1`

	// The rows' old versions, plaintext included, stay in the table's file until it is
	// rewritten; VACUUM FULL writes a new file without them.
	sqlCompactAccounts = `VACUUM FULL accounts`
)

// SetCredentialKeys gives the store the keys that seal and open account credentials. Call
// it before serving; without it, writing or reading a credential is ErrNoCredentialKey.
func (s *Store) SetCredentialKeys(kr *credentials.Keyring) { s.keys = kr }

// PrepareCredentials runs at start: every sealed row must be under a configured key (else a
// CredentialKeyError, or ErrNoCredentialKey when the store has no keys), and rows still in
// plaintext are sealed under the current key. It returns how many rows it sealed.
func (s *Store) PrepareCredentials(ctx context.Context) (int, error) {
	if err := s.checkCredentialKeys(ctx); err != nil {
		return 0, err
	}
	n, err := s.sealPlaintext(ctx)
	if err != nil {
		return n, err
	}
	if n > 0 {
		return n, s.compactAccounts(ctx)
	}
	return n, nil
}

func (s *Store) checkCredentialKeys(ctx context.Context) error {
	rows, err := s.Pool.Query(ctx, sqlSealedKeyIDs)
	if err != nil {
		return fmt.Errorf("reading credential key ids: %w", err)
	}
	missing := &CredentialKeyError{}
	var keyID string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&keyID, &n}, func() error {
		if s.keys == nil || !s.keys.Knows(keyID) {
			missing.KeyIDs = append(missing.KeyIDs, keyID)
			missing.Rows += n
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading credential key ids: %w", err)
	}
	if len(missing.KeyIDs) > 0 {
		sort.Strings(missing.KeyIDs)
		return missing
	}
	if s.keys == nil {
		return ErrNoCredentialKey
	}
	return nil
}

// CredentialRotation counts what RotateCredentials rewrote.
type CredentialRotation struct {
	Sealed      int // plaintext rows sealed
	Reencrypted int // rows moved from another key to the current one
}

// RotateCredentials seals the plaintext rows and re-encrypts every row sealed under another
// key than the current one, credentialBatch rows per transaction. Run again, it finds
// nothing to do. A row under a key the store does not hold stops it with an error; the
// batches before stay done.
func (s *Store) RotateCredentials(ctx context.Context) (CredentialRotation, error) {
	var out CredentialRotation
	if s.keys == nil {
		return out, ErrNoCredentialKey
	}
	var err error
	if out.Sealed, err = s.sealPlaintext(ctx); err != nil {
		return out, err
	}
	for {
		n, err := s.reencryptBatch(ctx)
		out.Reencrypted += n
		if err != nil {
			return out, err
		}
		if n == 0 {
			break
		}
	}
	if out.Sealed+out.Reencrypted > 0 {
		return out, s.compactAccounts(ctx)
	}
	return out, nil
}

// compactAccounts rewrites the accounts table, so that the rows' old versions (plaintext,
// or sealed under a key being retired) leave the table's file.
func (s *Store) compactAccounts(ctx context.Context) error {
	if _, err := s.Pool.Exec(ctx, sqlCompactAccounts); err != nil {
		return fmt.Errorf("rewriting the accounts table without the old credentials: %w", err)
	}
	return nil
}

func (s *Store) reencryptBatch(ctx context.Context) (int, error) {
	var n int
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sqlCredentialsNotUnder, s.keys.CurrentID(), credentialBatch)
		if err != nil {
			return err
		}
		type row struct {
			id     int64
			sealed credentials.Sealed
		}
		batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.id, &x.sealed.Ciphertext, &x.sealed.Nonce, &x.sealed.KeyID)
			return x, err
		})
		if err != nil {
			return err
		}
		for _, x := range batch {
			plain, err := s.keys.Open(x.id, x.sealed)
			if err != nil {
				return fmt.Errorf("opening the credential of account %d: %w", x.id, err)
			}
			sealed, err := s.keys.Seal(x.id, plain)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, sqlRewriteCredentials, x.id, sealed.Ciphertext, sealed.Nonce, sealed.KeyID); err != nil {
				return err
			}
		}
		n = len(batch)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("re-encrypting account credentials: %w", err)
	}
	return n, nil
}

// sealPlaintext seals every row whose accounts.credential is not yet empty, batch by batch.
func (s *Store) sealPlaintext(ctx context.Context) (int, error) {
	total := 0
	for {
		var n int
		err := s.WithTx(ctx, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, sqlPlaintextCredentials, credentialBatch)
			if err != nil {
				return err
			}
			type row struct {
				id          int64
				doc, apiKey string
			}
			batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
				var x row
				err := r.Scan(&x.id, &x.doc, &x.apiKey)
				return x, err
			})
			if err != nil {
				return err
			}
			for _, x := range batch {
				if err := s.sealDoc(ctx, tx, x.id, []byte(x.doc), x.apiKey); err != nil {
					return err
				}
			}
			n = len(batch)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("encrypting plaintext account credentials: %w", err)
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

// sealCredential stores apiKey sealed as the credential of account id and empties the
// plaintext column; "" removes the credential.
func (s *Store) sealCredential(ctx context.Context, tx pgx.Tx, id int64, apiKey string) error {
	doc, err := json.Marshal(credential{APIKey: apiKey})
	if err != nil {
		return fmt.Errorf("encoding the credential: %w", err)
	}
	return s.sealDoc(ctx, tx, id, doc, apiKey)
}

// sealDoc seals the credential JSON doc of account id; an empty apiKey clears the row's
// credential instead.
func (s *Store) sealDoc(ctx context.Context, tx pgx.Tx, id int64, doc []byte, apiKey string) error {
	if apiKey == "" {
		if _, err := tx.Exec(ctx, sqlSealCredential, id, nil, nil, nil, ""); err != nil {
			return fmt.Errorf("clearing the credential of account %d: %w", id, err)
		}
		return nil
	}
	if s.keys == nil {
		return fmt.Errorf("storing the credential of account %d: %w", id, ErrNoCredentialKey)
	}
	sealed, err := s.keys.Seal(id, doc)
	if err != nil {
		return fmt.Errorf("sealing the credential of account %d: %w", id, err)
	}
	if _, err := tx.Exec(ctx, sqlSealCredential, id, sealed.Ciphertext, sealed.Nonce, sealed.KeyID,
		credentials.Fingerprint(apiKey)); err != nil {
		return fmt.Errorf("storing the credential of account %d: %w", id, err)
	}
	return nil
}

// openAPIKey returns the api_key of account id from what its row holds. A plaintext
// api_key wins: only a row not yet sealed, or written by an older version during an
// upgrade, has one, and it is the newest value; the next start seals it.
func (s *Store) openAPIKey(id int64, plain string, sealed credentials.Sealed) (string, error) {
	if plain != "" {
		return plain, nil
	}
	if sealed.Ciphertext == nil {
		return "", nil
	}
	if s.keys == nil {
		return "", fmt.Errorf("opening the credential of account %d: %w", id, ErrNoCredentialKey)
	}
	doc, err := s.keys.Open(id, sealed)
	if err != nil {
		return "", fmt.Errorf("opening the credential of account %d: %w", id, err)
	}
	var c credential
	if err := json.Unmarshal(doc, &c); err != nil {
		return "", fmt.Errorf("decoding the credential of account %d: %w", id, err)
	}
	return c.APIKey, nil
}
