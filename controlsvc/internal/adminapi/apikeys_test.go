package adminapi

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

func TestAPIKeysLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u1 := e.createUser("u1")
	u2 := e.createUser("u2")
	g := e.createGroup("g", "openai")

	var k apiKeyView
	e.mustCall(http.MethodPost, "/api/v1/admin/api-keys", map[string]any{"user_id": u1, "group_id": g, "name": "laptop"}, http.StatusCreated, &k)
	if !regexp.MustCompile(`^sk-pg-[0-9a-f]{48}$`).MatchString(k.Key) {
		t.Fatalf("key = %q, want sk-pg- + 48 hex", k.Key)
	}
	if k.UserID != u1 || k.GroupID != g || k.Name != "laptop" || k.Status != "active" || !strings.HasPrefix(k.Key, k.KeyPrefix) || len(k.KeyPrefix) >= 20 {
		t.Errorf("created = %+v", k)
	}
	// From here on, no response may contain the key again.
	e.secrets = append(e.secrets, k.Key, k.Key[len(k.KeyPrefix):])

	// Stored hashed: the database holds the SHA-256, and admission finds the key by it.
	var hash string
	if err := e.st.Pool.QueryRow(t.Context(), `SELECT key_hash FROM api_keys WHERE id = $1`, k.ID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if hash != store.HashAPIKey(k.Key) {
		t.Errorf("key_hash = %s, want sha256 hex of the key", hash)
	}
	var row string
	if err := e.st.Pool.QueryRow(t.Context(), `SELECT row_to_json(k)::text FROM api_keys k WHERE id = $1`, k.ID).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row, k.Key) {
		t.Errorf("api_keys row holds the key: %s", row)
	}

	var k2, k3 apiKeyView
	e.mustCall(http.MethodPost, "/api/v1/admin/api-keys", map[string]any{"user_id": u2, "group_id": g}, http.StatusCreated, &k2)
	e.mustCall(http.MethodPost, "/api/v1/admin/api-keys", map[string]any{"user_id": u1, "group_id": g, "name": "ci"}, http.StatusCreated, &k3)
	e.secrets = append(e.secrets, k2.Key, k3.Key)

	listIDs := func(query string) []int64 {
		t.Helper()
		status, raw := e.call(http.MethodGet, "/api/v1/admin/api-keys"+query, nil)
		if status != http.StatusOK {
			t.Fatalf("GET /api-keys%s = %d %s", query, status, raw)
		}
		var list listBody[map[string]any]
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, item := range list.Items {
			if _, has := item["key"]; has {
				t.Errorf("listed key carries a key field: %v", item)
			}
			ids = append(ids, int64(item["id"].(float64)))
		}
		return ids
	}
	tests := []struct {
		name  string
		query string
		want  []int64
	}{
		{"all", "", []int64{k.ID, k2.ID, k3.ID}},
		{"user 1", "?user_id=" + itoa(u1), []int64{k.ID, k3.ID}},
		{"user 2", "?user_id=" + itoa(u2), []int64{k2.ID}},
		{"unknown user", "?user_id=9999", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listIDs(tt.query); !equalIDs(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}

	status, body := e.call(http.MethodDelete, "/api/v1/admin/api-keys/"+itoa(k.ID), nil)
	if status != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s", status, body)
	}
	if got := listIDs("?user_id=" + itoa(u1)); !equalIDs(got, []int64{k3.ID}) {
		t.Errorf("after delete, user 1 keys = %v, want [%d]", got, k3.ID)
	}
	if _, err := e.st.AuthenticateKey(t.Context(), store.HashAPIKey(k.Key)); err == nil {
		t.Error("a deleted key still authenticates")
	}
	e.wantError(http.MethodDelete, "/api/v1/admin/api-keys/"+itoa(k.ID), nil, http.StatusNotFound, "not_found_error", "api key")
}

func TestAPIKeysValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.createUser("u")
	g := e.createGroup("g", "openai")
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		msg    string
	}{
		{"user missing", "POST", "", `{"group_id":` + itoa(g) + `}`, "user_id is required"},
		{"group missing", "POST", "", `{"user_id":` + itoa(u) + `}`, "group_id is required"},
		{"user not integer", "POST", "", `{"user_id":"1","group_id":1}`, "user_id must be an integer"},
		{"user unknown", "POST", "", `{"user_id":9999,"group_id":` + itoa(g) + `}`, "user_id: user 9999 does not exist"},
		{"group unknown", "POST", "", `{"user_id":` + itoa(u) + `,"group_id":9999}`, "group_id: group 9999 does not exist"},
		{"key field refused", "POST", "", `{"user_id":` + itoa(u) + `,"group_id":` + itoa(g) + `,"key":"sk-pg-mine"}`, `unknown field "key"`},
		{"list bad user filter", "GET", "?user_id=abc", "", "query parameter user_id must be a positive integer"},
		{"list negative user filter", "GET", "?user_id=-1", "", "user_id must be a positive integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			e.wantError(tt.method, "/api/v1/admin/api-keys"+tt.path, body, http.StatusBadRequest, "invalid_request_error", tt.msg)
		})
	}
	e.wantError(http.MethodDelete, "/api/v1/admin/api-keys/77", nil, http.StatusNotFound, "not_found_error", "api key 77 not found")
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
