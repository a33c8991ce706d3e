package store

import (
	"context"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestCreateAPIKey(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	u, err := st.CreateUser(ctx, User{Name: "u", Concurrency: 1, Status: "active"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := st.CreateGroup(ctx, Group{Name: "g", Platform: "openai", RateMultiplier: "1", Status: "active"})
	if err != nil {
		t.Fatal(err)
	}

	k, key, err := st.CreateAPIKey(ctx, NewAPIKey{UserID: u.ID, GroupID: g.ID, Name: "laptop"})
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if !regexp.MustCompile(`^sk-pg-[0-9a-f]{48}$`).MatchString(key) {
		t.Errorf("key %q does not match sk-pg- + 48 hex", key)
	}
	if k.UserID != u.ID || k.GroupID != g.ID || k.Name != "laptop" || k.Status != "active" || k.KeyPrefix != key[:12] {
		t.Errorf("CreateAPIKey() = %+v (key prefix of %q)", k, key)
	}
	// Only the hash is stored: no column holds the key.
	var row, hash string
	if err := st.Pool.QueryRow(ctx, `SELECT row_to_json(k)::text, key_hash FROM api_keys k WHERE id = $1`, k.ID).Scan(&row, &hash); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row, key) || strings.Contains(row, key[12:]) {
		t.Errorf("api_keys row contains the key: %s", row)
	}
	if hash != HashAPIKey(key) || len(hash) != 64 {
		t.Errorf("key_hash = %q, want hex sha256 of the key %q", hash, HashAPIKey(key))
	}
	// Admission finds the key by its hash.
	auth, err := st.AuthenticateKey(ctx, HashAPIKey(key))
	if err != nil || auth.KeyID != k.ID {
		t.Errorf("AuthenticateKey() = %+v, %v; want key %d", auth, err, k.ID)
	}

	_, key2, err := st.CreateAPIKey(ctx, NewAPIKey{UserID: u.ID, GroupID: g.ID, Name: ""})
	if err != nil || key2 == key {
		t.Errorf("second key = %q, %v; want a different key", key2, err)
	}
}

func TestCreateAPIKeyUnknownRefs(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, User{Name: "u", Concurrency: 1, Status: "active"})
	g, _ := st.CreateGroup(ctx, Group{Name: "g", Platform: "openai", RateMultiplier: "1", Status: "active"})
	tests := []struct {
		name      string
		user, grp int64
		wantField string
	}{
		{"unknown user", 777, g.ID, "user_id"},
		{"unknown group", u.ID, 888, "group_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, key, err := st.CreateAPIKey(ctx, NewAPIKey{UserID: tt.user, GroupID: tt.grp, Name: "x"})
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != tt.wantField || key != "" {
				t.Errorf("CreateAPIKey() = %q, %v; want InvalidError on %s", key, err, tt.wantField)
			}
		})
	}
}

func TestListAndDeleteAPIKeys(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	u1, _ := st.CreateUser(ctx, User{Name: "u1", Concurrency: 1, Status: "active"})
	u2, _ := st.CreateUser(ctx, User{Name: "u2", Concurrency: 1, Status: "active"})
	g, _ := st.CreateGroup(ctx, Group{Name: "g", Platform: "openai", RateMultiplier: "1", Status: "active"})
	var ids []int64
	for _, uid := range []int64{u1.ID, u2.ID, u1.ID} {
		k, _, err := st.CreateAPIKey(ctx, NewAPIKey{UserID: uid, GroupID: g.ID, Name: "k"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
	}
	if err := st.DeleteAPIKey(ctx, ids[2]); err != nil {
		t.Fatalf("DeleteAPIKey: %v", err)
	}
	tests := []struct {
		name string
		user int64
		want []int64
	}{
		{"everyone", 0, []int64{ids[0], ids[1]}},
		{"user 1 without the deleted key", u1.ID, []int64{ids[0]}},
		{"user 2", u2.ID, []int64{ids[1]}},
		{"nobody", 9999, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := st.ListAPIKeys(ctx, tt.user, Page{})
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, k := range keys {
				got = append(got, k.ID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ListAPIKeys(%d) ids = %v, want %v", tt.user, got, tt.want)
			}
		})
	}
	var nf *NotFoundError
	if err := st.DeleteAPIKey(ctx, ids[2]); !errors.As(err, &nf) || nf.Resource != "api key" {
		t.Errorf("deleting twice: %v, want NotFoundError", err)
	}
}

func TestAPIKeyQuotaAndExpiry(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()
	u, _ := st.CreateUser(ctx, User{Name: "u", Concurrency: 1, Status: "active"})
	g, _ := st.CreateGroup(ctx, Group{Name: "g", Platform: "openai", RateMultiplier: "1", Status: "active"})
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	k, _, err := st.CreateAPIKey(ctx, NewAPIKey{UserID: u.ID, GroupID: g.ID, Name: "q", Status: "disabled",
		QuotaMicros: ptr(int64(5_000_000)), ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	if k.Status != "disabled" || k.QuotaMicros == nil || *k.QuotaMicros != 5_000_000 || k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) ||
		k.QuotaUsedMicros != 0 || k.QuotaReservedMicros != 0 {
		t.Fatalf("created = %+v", k)
	}
	got, err := st.GetAPIKey(ctx, k.ID)
	if err != nil || got.ID != k.ID || *got.QuotaMicros != 5_000_000 {
		t.Fatalf("GetAPIKey = %+v, %v", got, err)
	}
	tests := []struct {
		name  string
		patch APIKeyPatch
		check func(APIKey) bool
	}{
		{"empty patch keeps everything", APIKeyPatch{}, func(k APIKey) bool {
			return k.Status == "disabled" && k.QuotaMicros != nil && k.ExpiresAt != nil && k.Name == "q"
		}},
		{"clear quota", APIKeyPatch{Quota: MicrosPatch{Set: true}}, func(k APIKey) bool {
			return k.QuotaMicros == nil && k.ExpiresAt != nil
		}},
		{"clear expiry, enable, rename", APIKeyPatch{ExpiresAt: TimePatch{Set: true}, Status: ptr("active"), Name: ptr("r")},
			func(k APIKey) bool {
				return k.ExpiresAt == nil && k.Status == "active" && k.Name == "r" && k.QuotaMicros == nil
			}},
		{"set both", APIKeyPatch{Quota: MicrosPatch{Set: true, Micros: ptr(int64(1))}, ExpiresAt: TimePatch{Set: true, At: &exp}},
			func(k APIKey) bool { return *k.QuotaMicros == 1 && k.ExpiresAt.Equal(exp) }},
	}
	for _, tt := range tests { // sequential
		got, err := st.UpdateAPIKey(ctx, k.ID, tt.patch)
		if err != nil || !tt.check(got) {
			t.Fatalf("%s: UpdateAPIKey = %+v, %v", tt.name, got, err)
		}
	}
	if err := st.DeleteAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	var nf *NotFoundError
	if _, err := st.UpdateAPIKey(ctx, k.ID, APIKeyPatch{Name: ptr("x")}); !errors.As(err, &nf) {
		t.Errorf("patching a deleted key = %v, want NotFoundError", err)
	}
	if _, err := st.GetAPIKey(ctx, k.ID); !errors.As(err, &nf) {
		t.Errorf("reading a deleted key = %v, want NotFoundError", err)
	}
}
