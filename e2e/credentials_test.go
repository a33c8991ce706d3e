package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poolgate/poolgate/internal/testenv"
)

// Through the real stack, an account's credential is stored encrypted and still serves:
// the request reaches the upstream with the credential, the admin API shows only
// has_credential and the fingerprint, and a dump of the database holds no plaintext
// credential of any account.
func TestCredentialsEncryptedAtRest(t *testing.T) {
	cred := unique("sk-up-at-rest")
	programCredential(t, cred, obj{"text": "ok", "usage": obj{"input_tokens": 3, "output_tokens": 1}})
	tn, accts := newTenant(t, accountSpec{Credential: cred})
	if code, _, body := post(t, "/v1/responses", tn.Key, freshBody(), nil); code != 200 {
		t.Fatalf("request: %d %s, want 200", code, body)
	}
	if reqs := upstreamRequestsFor(t, cred); len(reqs) != 1 {
		t.Fatalf("upstream requests with the account credential = %d, want 1", len(reqs))
	}

	sum := sha256.Sum256([]byte(cred))
	fp := hex.EncodeToString(sum[:4])
	acc := mustAdmin(t, "GET", fmt.Sprintf("/accounts/%d", accts[0]), nil)
	if acc["has_credential"] != true || acc["credential_fingerprint"] != fp || acc["credential"] != nil || acc["api_key"] != nil {
		t.Errorf("admin view = %v, want has_credential and credential_fingerprint %s only", acc, fp)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, gw.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var plaintext, sealed int
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE credential <> '{}'::jsonb),
		count(*) FILTER (WHERE credential_ciphertext IS NOT NULL) FROM accounts`).Scan(&plaintext, &sealed); err != nil {
		t.Fatal(err)
	}
	if plaintext != 0 || sealed == 0 {
		t.Errorf("accounts: %d with a plaintext credential, %d sealed; want 0 and some", plaintext, sealed)
	}
	dump, err := testenv.PGDump(ctx, gw.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dump, []byte(fp)) {
		t.Fatalf("the dump (%d bytes) lacks the account's row", len(dump))
	}
	if bytes.Contains(dump, []byte(cred)) || bytes.Contains(dump, []byte(strings.TrimPrefix(cred, "sk-"))) {
		t.Error("the database dump holds the account's plaintext credential")
	}
}
