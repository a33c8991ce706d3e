package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/credentials"
)

// seedGroups creates an openai and an anthropic group.
func seedGroups(t *testing.T, st *Store) (openai, anthropic Group) {
	t.Helper()
	ctx := context.Background()
	var err error
	if openai, err = st.CreateGroup(ctx, Group{Name: "oa", Platform: "openai", RateMultiplier: "1", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	if anthropic, err = st.CreateGroup(ctx, Group{Name: "an", Platform: "anthropic", RateMultiplier: "1", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	return openai, anthropic
}

// rawCredential is the credential document stored for account id, opened with the store's
// keys; the plaintext column must be empty.
func rawCredential(t *testing.T, st *Store, id int64) string {
	t.Helper()
	row := rawSealed(t, st, id)
	if row.plaintext != "{}" {
		t.Fatalf("accounts.credential = %s, want {} (sealed)", row.plaintext)
	}
	doc, err := st.keys.Open(id, credentials.Sealed{Ciphertext: row.ciphertext, Nonce: row.nonce, KeyID: row.keyID})
	if err != nil {
		t.Fatalf("opening the credential of account %d: %v", id, err)
	}
	return string(doc)
}

func TestAccountsRoundTrip(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	oa, _ := seedGroups(t, st)

	a, err := st.CreateAccount(ctx, NewAccount{
		Name: "acct-1", Platform: "openai", BaseURL: "https://api.openai.com", APIKey: "sk-upstream-secret",
		Concurrency: 4, Priority: 10, Status: "active",
		GroupIDs:     []int64{oa.ID, oa.ID},
		ModelMapping: map[string]string{"gpt-4o": "gpt-4o-2024-08-06", "gpt-5*": "gpt-5"},
	})
	if err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	want := Account{
		ID: a.ID, Name: "acct-1", Platform: "openai", BaseURL: "https://api.openai.com", HasCredential: true,
		CredentialFP: credentials.Fingerprint("sk-upstream-secret"),
		Concurrency:  4, Priority: 10, Status: "active", GroupIDs: []int64{oa.ID},
		ModelMapping: map[string]string{"gpt-4o": "gpt-4o-2024-08-06", "gpt-5*": "gpt-5"},
		CreatedAt:    a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("CreateAccount() = %+v\nwant %+v", a, want)
	}
	if cred := rawCredential(t, st, a.ID); !strings.Contains(cred, `"api_key":"sk-upstream-secret"`) {
		t.Errorf("stored credential = %s, want the api_key", cred)
	}
	got, err := st.GetAccount(ctx, a.ID)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("GetAccount() = %+v, %v", got, err)
	}

	bare, err := st.CreateAccount(ctx, NewAccount{Name: "bare", Platform: "anthropic", BaseURL: "http://127.0.0.1:9", Status: "disabled"})
	if err != nil {
		t.Fatal(err)
	}
	if bare.HasCredential || len(bare.GroupIDs) != 0 || bare.ModelMapping == nil || len(bare.ModelMapping) != 0 {
		t.Errorf("account without credential/groups/mapping = %+v", bare)
	}
	list, err := st.ListAccounts(ctx, Page{})
	if err != nil || len(list) != 2 || list[0].ID != a.ID || list[1].ID != bare.ID {
		t.Fatalf("ListAccounts() = %+v, %v", list, err)
	}
}

func TestCreateAccountBadGroups(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	oa, an := seedGroups(t, st)
	tests := []struct {
		name     string
		platform string
		groups   []int64
		wantMsg  string
	}{
		{"unknown group", "openai", []int64{oa.ID, 9999}, "group 9999 does not exist"},
		{"platform mismatch", "openai", []int64{an.ID}, "anthropic group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := st.CreateAccount(ctx, NewAccount{Name: "x", Platform: tt.platform, BaseURL: "https://x.test", Status: "active", GroupIDs: tt.groups})
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != "group_ids" || !strings.Contains(ie.Message, tt.wantMsg) {
				t.Fatalf("CreateAccount error = %v, want InvalidError on group_ids containing %q", err, tt.wantMsg)
			}
		})
	}
	// The failed transactions left nothing behind.
	if list, err := st.ListAccounts(ctx, Page{}); err != nil || len(list) != 0 {
		t.Errorf("ListAccounts() after failures = %+v, %v; want none", list, err)
	}
}

func TestUpdateAccount(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	oa, an := seedGroups(t, st)
	a, err := st.CreateAccount(ctx, NewAccount{Name: "a", Platform: "openai", BaseURL: "https://a.test", APIKey: "old-secret",
		Concurrency: 1, Priority: 1, Status: "active", GroupIDs: []int64{oa.ID}, ModelMapping: map[string]string{"m": "n"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.MarkAccount(ctx, a.ID, AccountMark{Kind: MarkPaused, Until: time.Now().Add(time.Hour), Reason: "upstream 401"}); err != nil {
		t.Fatal(err)
	}

	// Changing the platform alone must fail: the account would stay in an openai group.
	_, err = st.UpdateAccount(ctx, a.ID, AccountPatch{Platform: ptr("anthropic")})
	var ie *InvalidError
	if !errors.As(err, &ie) || ie.Field != "group_ids" {
		t.Fatalf("platform-only change error = %v, want InvalidError on group_ids", err)
	}

	got, err := st.UpdateAccount(ctx, a.ID, AccountPatch{
		Platform: ptr("anthropic"), GroupIDs: &[]int64{an.ID}, Priority: ptr(7), APIKey: ptr("new-secret"),
		ModelMapping: &map[string]string{},
	})
	if err != nil {
		t.Fatalf("UpdateAccount: %v", err)
	}
	if got.Platform != "anthropic" || !reflect.DeepEqual(got.GroupIDs, []int64{an.ID}) || got.Priority != 7 ||
		got.Name != "a" || got.Concurrency != 1 || len(got.ModelMapping) != 0 || !got.HasCredential {
		t.Errorf("UpdateAccount() = %+v", got)
	}
	if got.PausedUntil != nil || got.PauseReason != "" {
		t.Errorf("a new credential must clear the pause, got paused_until=%v reason=%q", got.PausedUntil, got.PauseReason)
	}
	if cred := rawCredential(t, st, a.ID); !strings.Contains(cred, "new-secret") || strings.Contains(cred, "old-secret") {
		t.Errorf("stored credential = %s, want the new secret only", cred)
	}

	// A patch without groups or credential keeps both.
	got, err = st.UpdateAccount(ctx, a.ID, AccountPatch{Status: ptr("disabled")})
	if err != nil || got.Status != "disabled" || !reflect.DeepEqual(got.GroupIDs, []int64{an.ID}) || !got.HasCredential {
		t.Errorf("status-only UpdateAccount() = %+v, %v", got, err)
	}
	// An empty group list removes every membership.
	got, err = st.UpdateAccount(ctx, a.ID, AccountPatch{GroupIDs: &[]int64{}})
	if err != nil || len(got.GroupIDs) != 0 {
		t.Errorf("clearing groups: %+v, %v", got, err)
	}
}

func TestDeleteAccount(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	keep, err := st.CreateAccount(ctx, NewAccount{Name: "keep", Platform: "openai", BaseURL: "https://k.test", Status: "active"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := st.CreateAccount(ctx, NewAccount{Name: "gone", Platform: "openai", BaseURL: "https://g.test", Status: "active"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteAccount(ctx, gone.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	var nf *NotFoundError
	for name, err := range map[string]error{
		"delete again":         st.DeleteAccount(ctx, gone.ID),
		"get":                  second(st.GetAccount(ctx, gone.ID)),
		"update":               second(st.UpdateAccount(ctx, gone.ID, AccountPatch{Name: ptr("back")})),
		"delete never existed": st.DeleteAccount(ctx, 4242),
	} {
		if !errors.As(err, &nf) || nf.Resource != "account" {
			t.Errorf("%s: error = %v, want NotFoundError", name, err)
		}
	}
	ids, err := st.AccountIDs(ctx)
	if err != nil || !reflect.DeepEqual(ids, []int64{keep.ID}) {
		t.Errorf("AccountIDs() = %v, %v; want [%d]", ids, err, keep.ID)
	}
	var deletedAt *time.Time
	if err := st.Pool.QueryRow(ctx, `SELECT deleted_at FROM accounts WHERE id = $1`, gone.ID).Scan(&deletedAt); err != nil || deletedAt == nil {
		t.Errorf("deleted_at = %v, %v; want the row kept with deleted_at set", deletedAt, err)
	}
}

func second[T any](_ T, err error) error { return err }
