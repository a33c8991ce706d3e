// Package storetest gives tests outside package store a migrated store on a fresh database
// (internal/testenv), the way controlsvc opens one at start-up.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/credentials"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/internal/testenv"
)

// openTimeout bounds opening and migrating; a shared test server may be slow under load.
const openTimeout = 60 * time.Second

// CredentialKey is the key test stores seal account credentials under (base64 of
// "test-credential-key-000000000000").
const CredentialKey = "dGVzdC1jcmVkZW50aWFsLWtleS0wMDAwMDAwMDAwMDA="

// Keys is a keyring of CredentialKey.
func Keys(t testing.TB) *credentials.Keyring {
	t.Helper()
	k, err := credentials.ParseKey(CredentialKey)
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewKeyring(k, nil)
}

// Open returns a migrated store on a fresh database, with the keys of CredentialKey, closed
// by t.Cleanup.
func Open(t testing.TB) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	st, err := store.Open(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	st.SetCredentialKeys(Keys(t))
	return st
}
