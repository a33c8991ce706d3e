package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/credentials"
	"github.com/poolgate/poolgate/internal/testenv"
)

// Two credential keys: base64 of 32 bytes 'a' and 32 bytes 'b'.
const (
	testKeyA = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE="
	testKeyB = "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI="
)

// testKeys is a keyring sealing under current and also opening under previous (nil: none).
func testKeys(t testing.TB, current string, previous *string) *credentials.Keyring {
	t.Helper()
	cur, err := credentials.ParseKey(current)
	if err != nil {
		t.Fatal(err)
	}
	var prev *credentials.Key
	if previous != nil {
		p, err := credentials.ParseKey(*previous)
		if err != nil {
			t.Fatal(err)
		}
		prev = &p
	}
	return credentials.NewKeyring(cur, prev)
}

// storeWith is another handle on st's database with the given keys (nil: none), as a
// controlsvc started with other settings would have.
func storeWith(t *testing.T, st *Store, keys *credentials.Keyring) *Store {
	t.Helper()
	other, err := Open(context.Background(), st.Pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	other.keys = keys
	return other
}

type sealedRow struct {
	plaintext   string
	ciphertext  []byte
	nonce       []byte
	keyID       string
	fingerprint string
}

func rawSealed(t *testing.T, st *Store, id int64) sealedRow {
	t.Helper()
	var r sealedRow
	err := st.Pool.QueryRow(context.Background(), `SELECT credential::text, credential_ciphertext, credential_nonce,
		COALESCE(credential_key_id, ''), credential_fingerprint FROM accounts WHERE id = $1`, id).
		Scan(&r.plaintext, &r.ciphertext, &r.nonce, &r.keyID, &r.fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// groupKeys maps the account ids of group gid to the api_keys admission would send.
func admittedKeys(t *testing.T, st *Store, gid int64, platform string) (map[int64]string, error) {
	t.Helper()
	accs, err := st.GroupAccounts(context.Background(), gid, platform)
	out := map[int64]string{}
	for _, a := range accs {
		out[a.ID] = a.APIKey
	}
	return out, err
}

func TestCredentialsSealedAtRest(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	oa, _ := seedGroups(t, st)
	a, err := st.CreateAccount(ctx, NewAccount{Name: "a", Platform: "openai", BaseURL: "https://x.test",
		APIKey: "sk-sealed-first", Status: "active", GroupIDs: []int64{oa.ID}})
	if err != nil {
		t.Fatal(err)
	}
	keyA := testKeys(t, testKeyA, nil)
	row := rawSealed(t, st, a.ID)
	if row.plaintext != "{}" || row.keyID != keyA.CurrentID() || len(row.nonce) != 12 ||
		bytes.Contains(row.ciphertext, []byte("sk-sealed")) || row.fingerprint != credentials.Fingerprint("sk-sealed-first") {
		t.Fatalf("stored row = %+v, want only the sealed credential under key %s", row, keyA.CurrentID())
	}
	if !a.HasCredential || a.CredentialFP != row.fingerprint {
		t.Errorf("account = %+v, want has_credential and fingerprint %s", a, row.fingerprint)
	}
	if got, err := admittedKeys(t, st, oa.ID, "openai"); err != nil || got[a.ID] != "sk-sealed-first" {
		t.Fatalf("admission reads %v, %v; want the api_key opened", got, err)
	}

	patched, err := st.UpdateAccount(ctx, a.ID, AccountPatch{APIKey: ptr("sk-sealed-second")})
	if err != nil || patched.CredentialFP != credentials.Fingerprint("sk-sealed-second") {
		t.Fatalf("UpdateAccount = %+v, %v", patched, err)
	}
	if again := rawSealed(t, st, a.ID); again.plaintext != "{}" || bytes.Equal(again.nonce, row.nonce) {
		t.Errorf("after a new credential: %+v", again)
	}
	if got, err := admittedKeys(t, st, oa.ID, "openai"); err != nil || got[a.ID] != "sk-sealed-second" {
		t.Fatalf("admission reads %v, %v; want the new api_key", got, err)
	}
	// A patch of other fields leaves the sealed credential as it is.
	before := rawSealed(t, st, a.ID)
	if _, err := st.UpdateAccount(ctx, a.ID, AccountPatch{Name: ptr("renamed")}); err != nil {
		t.Fatal(err)
	}
	if after := rawSealed(t, st, a.ID); !reflect.DeepEqual(after, before) {
		t.Errorf("a rename rewrote the credential: %+v, was %+v", after, before)
	}
	// A store without keys can neither write nor read one.
	none := storeWith(t, st, nil)
	if _, err := none.CreateAccount(ctx, NewAccount{Name: "b", Platform: "openai", BaseURL: "https://x.test",
		APIKey: "sk-nokey", Status: "active"}); !errors.Is(err, ErrNoCredentialKey) {
		t.Errorf("CreateAccount without keys: %v, want ErrNoCredentialKey", err)
	}
	if _, err := admittedKeys(t, none, oa.ID, "openai"); !errors.Is(err, ErrNoCredentialKey) {
		t.Errorf("GroupAccounts without keys: %v, want ErrNoCredentialKey", err)
	}
}

// A ciphertext copied onto another account's row does not open there: the account id is
// the additional data.
func TestCredentialBoundToItsRow(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	oa, _ := seedGroups(t, st)
	var ids []int64
	for _, k := range []string{"sk-row-one", "sk-row-two"} {
		a, err := st.CreateAccount(ctx, NewAccount{Name: k, Platform: "openai", BaseURL: "https://x.test",
			APIKey: k, Status: "active", GroupIDs: []int64{oa.ID}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	admExec(t, st, `UPDATE accounts d SET credential_ciphertext = s.credential_ciphertext, credential_nonce = s.credential_nonce
		FROM accounts s WHERE s.id = $1 AND d.id = $2`, ids[0], ids[1])
	if _, err := admittedKeys(t, st, oa.ID, "openai"); !errors.Is(err, credentials.ErrDecrypt) {
		t.Fatalf("GroupAccounts over a moved ciphertext: %v, want ErrDecrypt", err)
	}
}

// seedPlaintext inserts n accounts the way versions before 0012 stored them, one of them
// deleted, and returns their api_keys by id.
func seedPlaintext(t *testing.T, st *Store, gid int64, n int) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("sk-plain-%03d-%d", i, time.Now().UnixNano())
		id := admSQL(t, st, `INSERT INTO accounts (name, platform, base_url, credential) VALUES ($1, 'openai', 'https://x.test', $2) RETURNING id`,
			fmt.Sprintf("plain-%03d", i), fmt.Sprintf(`{"api_key": %q}`, key))
		admExec(t, st, `INSERT INTO account_groups (account_id, group_id) VALUES ($1, $2)`, id, gid)
		out[id] = key
	}
	return out
}

// The first start with a key after the upgrade seals every plaintext row, deleted ones
// included, empties the plaintext column, and admission goes on reading the same keys.
func TestPrepareCredentialsSealsPlaintextRows(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	if err := st.migrate(ctx, migrationsBefore(t, "0012_")); err != nil {
		t.Fatalf("migrating to the schema before 0012: %v", err)
	}
	gid := admSQL(t, st, `INSERT INTO groups (name, platform) VALUES ('g', 'openai') RETURNING id`)
	const n = credentialBatch*2 + 7 // more than one batch
	want := seedPlaintext(t, st, gid, n)
	var deleted int64
	for id := range want {
		deleted = id
		break
	}
	admExec(t, st, `UPDATE accounts SET deleted_at = now() WHERE id = $1`, deleted)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	// Before: admission reads the plaintext rows as they are.
	st.keys = testKeys(t, testKeyA, nil)
	got, err := admittedKeys(t, st, gid, "openai")
	if err != nil || len(got) != n-1 {
		t.Fatalf("admission before sealing: %d accounts, %v", len(got), err)
	}

	sealed, err := st.PrepareCredentials(ctx)
	if err != nil || sealed != n {
		t.Fatalf("PrepareCredentials = %d, %v; want %d rows sealed", sealed, err, n)
	}
	for id, key := range want {
		row := rawSealed(t, st, id)
		if row.plaintext != "{}" || row.keyID != st.keys.CurrentID() || row.fingerprint != credentials.Fingerprint(key) {
			t.Fatalf("account %d after sealing: %+v", id, row)
		}
	}
	got, err = admittedKeys(t, st, gid, "openai")
	delete(want, deleted)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("admission after sealing: %v, %v", got, err)
	}
	if again, err := st.PrepareCredentials(ctx); err != nil || again != 0 {
		t.Errorf("second PrepareCredentials = %d, %v; want nothing to do", again, err)
	}
}

func TestPrepareCredentialsRefusesMissingKeys(t *testing.T) {
	t.Parallel()
	st := newStore(t) // keys: A
	ctx := context.Background()
	keyA, keyB := testKeys(t, testKeyA, nil), testKeys(t, testKeyB, nil)

	if _, err := storeWith(t, st, nil).PrepareCredentials(ctx); !errors.Is(err, ErrNoCredentialKey) {
		t.Errorf("empty database, no keys: %v, want ErrNoCredentialKey", err)
	}
	if _, err := st.CreateAccount(ctx, NewAccount{Name: "a", Platform: "openai", BaseURL: "https://x.test",
		APIKey: "sk-under-a", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keys *credentials.Keyring
		want *CredentialKeyError // nil: starts
	}{
		{"no keys", nil, &CredentialKeyError{KeyIDs: []string{keyA.CurrentID()}, Rows: 1}},
		{"another key", keyB, &CredentialKeyError{KeyIDs: []string{keyA.CurrentID()}, Rows: 1}},
		{"the key", keyA, nil},
		{"the key as the previous one", testKeys(t, testKeyB, ptr(testKeyA)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := storeWith(t, st, tt.keys).PrepareCredentials(ctx)
			var ke *CredentialKeyError
			if tt.want == nil {
				if err != nil {
					t.Fatalf("PrepareCredentials: %v", err)
				}
				return
			}
			if !errors.As(err, &ke) || !reflect.DeepEqual(ke, tt.want) || !strings.Contains(err.Error(), keyA.CurrentID()) {
				t.Fatalf("PrepareCredentials = %v, want %+v", err, tt.want)
			}
		})
	}
}

// Rotation re-encrypts every row under the new key, deleted and plaintext ones included,
// batch by batch; afterwards the old key is not needed, and a rerun has nothing to do.
func TestRotateCredentials(t *testing.T) {
	t.Parallel()
	st := newStore(t) // keys: A
	ctx := context.Background()
	gid := admSQL(t, st, `INSERT INTO groups (name, platform) VALUES ('g', 'openai') RETURNING id`)
	want := seedPlaintext(t, st, gid, credentialBatch+3)
	if n, err := st.PrepareCredentials(ctx); err != nil || n != len(want) {
		t.Fatalf("sealing under A: %d, %v", n, err)
	}
	late := seedPlaintext(t, st, gid, 2) // written in plaintext by an older instance meanwhile
	var deleted int64
	for id := range late {
		deleted = id
	}
	admExec(t, st, `UPDATE accounts SET deleted_at = now() WHERE id = $1`, deleted)

	rotating := storeWith(t, st, testKeys(t, testKeyB, ptr(testKeyA)))
	got, err := rotating.RotateCredentials(ctx)
	if want := (CredentialRotation{Sealed: 2, Reencrypted: len(want)}); err != nil || got != want {
		t.Fatalf("RotateCredentials = %+v, %v; want %+v", got, err, want)
	}
	if again, err := rotating.RotateCredentials(ctx); err != nil || again != (CredentialRotation{}) {
		t.Errorf("second RotateCredentials = %+v, %v; want nothing to do", again, err)
	}
	for id, key := range late {
		want[id] = key
	}
	onlyB := storeWith(t, st, testKeys(t, testKeyB, nil))
	if _, err := onlyB.PrepareCredentials(ctx); err != nil {
		t.Fatalf("starting with the new key alone: %v", err)
	}
	for id, key := range want {
		if row := rawSealed(t, st, id); row.keyID != onlyB.keys.CurrentID() || row.fingerprint != credentials.Fingerprint(key) {
			t.Fatalf("account %d after rotation: %+v", id, row)
		}
	}
	keys, err := admittedKeys(t, onlyB, gid, "openai")
	delete(want, deleted)
	if err != nil || !reflect.DeepEqual(keys, want) {
		t.Fatalf("admission under the new key alone: %d accounts, %v", len(keys), err)
	}
	if _, err := storeWith(t, st, testKeys(t, testKeyA, nil)).PrepareCredentials(ctx); err == nil {
		t.Error("the old key alone still starts after the rotation")
	}
	// Without the old key, rows still under it stop the rotation and are left as they were.
	admExec(t, st, `UPDATE accounts SET credential_key_id = 'deadbeef' WHERE id = (SELECT min(id) FROM accounts)`)
	if _, err := onlyB.RotateCredentials(ctx); !errors.Is(err, credentials.ErrUnknownKey) {
		t.Errorf("rotation over a row under an unknown key: %v, want ErrUnknownKey", err)
	}
}

// The credential columns of a database dump hold no plaintext credential: neither of the
// accounts created through the store nor of those sealed at start after the upgrade.
func TestCredentialDumpHoldsNoPlaintext(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	if err := st.migrate(ctx, migrationsBefore(t, "0012_")); err != nil {
		t.Fatal(err)
	}
	gid := admSQL(t, st, `INSERT INTO groups (name, platform) VALUES ('g', 'openai') RETURNING id`)
	secrets := []string{}
	for _, key := range seedPlaintext(t, st, gid, 3) {
		secrets = append(secrets, key)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	st.keys = testKeys(t, testKeyA, nil)
	if _, err := st.PrepareCredentials(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		key := fmt.Sprintf("sk-dumped-%d-%d", i, time.Now().UnixNano())
		if _, err := st.CreateAccount(ctx, NewAccount{Name: fmt.Sprintf("dump-account-%d", i), Platform: "openai",
			BaseURL: "https://x.test", APIKey: key, Status: "active"}); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, key)
	}
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	dump, err := testenv.PGDump(dctx, st.Pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dump, []byte("dump-account-2")) || !bytes.Contains(dump, []byte("credential_ciphertext")) {
		t.Fatalf("the dump (%d bytes) lacks the accounts' rows", len(dump))
	}
	for _, s := range secrets {
		if bytes.Contains(dump, []byte(s)) || bytes.Contains(dump, []byte(strings.TrimPrefix(s, "sk-"))) {
			t.Errorf("the dump holds the credential %s", s)
		}
	}
}
