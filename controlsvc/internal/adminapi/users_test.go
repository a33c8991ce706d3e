package adminapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestUsersCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	var created userView
	e.mustCall(http.MethodPost, "/api/v1/admin/users",
		`{"name":"  alice ","concurrency":3,"balance_usd":12.345678,"status":"active"}`, http.StatusCreated, &created)
	if created.ID == 0 || created.Name != "alice" || created.Concurrency != 3 || created.BalanceUSD != "12.345678" || created.Status != "active" {
		t.Fatalf("created = %+v", created)
	}
	// Exact micros in the database: no float drift.
	u, err := e.st.GetUser(t.Context(), created.ID)
	if err != nil || u.BalanceMicros != 12_345_678 {
		t.Fatalf("stored balance = %d, %v; want 12345678", u.BalanceMicros, err)
	}

	var defaults userView
	e.mustCall(http.MethodPost, "/api/v1/admin/users", `{"name":"bob"}`, http.StatusCreated, &defaults)
	if defaults.Concurrency != 5 || defaults.BalanceUSD != "0" || defaults.Status != "active" {
		t.Errorf("defaults = %+v, want concurrency 5, balance 0, active", defaults)
	}

	var got userView
	e.mustCall(http.MethodGet, "/api/v1/admin/users/"+itoa(created.ID), nil, http.StatusOK, &got)
	if got != created {
		t.Errorf("GET = %+v, want %+v", got, created)
	}
	var list listBody[userView]
	e.mustCall(http.MethodGet, "/api/v1/admin/users", nil, http.StatusOK, &list)
	if len(list.Items) != 2 || list.Items[0].ID != created.ID || list.Items[1].ID != defaults.ID {
		t.Errorf("list = %+v", list)
	}

	var patched userView
	e.mustCall(http.MethodPatch, "/api/v1/admin/users/"+itoa(created.ID),
		`{"balance_usd":0.1,"status":"disabled"}`, http.StatusOK, &patched)
	if patched.BalanceUSD != "0.1" || patched.Status != "disabled" || patched.Name != "alice" || patched.Concurrency != 3 {
		t.Errorf("patched = %+v", patched)
	}
	e.mustCall(http.MethodPatch, "/api/v1/admin/users/"+itoa(created.ID), `{"name":"al","concurrency":0}`, http.StatusOK, &patched)
	if patched.Name != "al" || patched.Concurrency != 0 || patched.BalanceUSD != "0.1" {
		t.Errorf("patched = %+v", patched)
	}

	// The raw JSON carries balance_usd as a number, not a string.
	_, raw := e.call(http.MethodGet, "/api/v1/admin/users/"+itoa(created.ID), nil)
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	if _, ok := generic["balance_usd"].(float64); !ok {
		t.Errorf("balance_usd = %#v, want a JSON number", generic["balance_usd"])
	}

	e.wantError(http.MethodGet, "/api/v1/admin/users/999", nil, http.StatusNotFound, "not_found_error", "user 999 not found")
	e.wantError(http.MethodPatch, "/api/v1/admin/users/999", `{"name":"x"}`, http.StatusNotFound, "not_found_error", "user 999")
}

func TestUsersValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.createUser("valid")
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		msg    string
	}{
		{"empty body", "POST", "/users", ``, 400, "request body is empty"},
		{"not json", "POST", "/users", `{"name":`, 400, "not valid JSON"},
		{"array", "POST", "/users", `[]`, 400, "must be a JSON object"},
		{"trailing data", "POST", "/users", `{"name":"a"} {"name":"b"}`, 400, "single JSON object"},
		{"unknown field", "POST", "/users", `{"name":"a","concurency":3}`, 400, `unknown field "concurency"`},
		{"name missing", "POST", "/users", `{"concurrency":3}`, 400, "name is required"},
		{"name blank", "POST", "/users", `{"name":"   "}`, 400, "name must not be empty"},
		{"name wrong type", "POST", "/users", `{"name":5}`, 400, "name must be a string"},
		{"concurrency negative", "POST", "/users", `{"name":"a","concurrency":-1}`, 400, "concurrency must be between 0"},
		{"concurrency fraction", "POST", "/users", `{"name":"a","concurrency":1.5}`, 400, "concurrency must be an integer"},
		{"concurrency string", "POST", "/users", `{"name":"a","concurrency":"3"}`, 400, "concurrency must be an integer"},
		{"status unknown", "POST", "/users", `{"name":"a","status":"banned"}`, 400, "status must be one of active, disabled"},
		{"balance too precise", "POST", "/users", `{"name":"a","balance_usd":0.0000001}`, 400, "balance_usd must have at most 6 decimal places"},
		{"balance negative", "POST", "/users", `{"name":"a","balance_usd":-1}`, 400, "balance_usd must not be negative"},
		{"balance not a number", "POST", "/users", `{"name":"a","balance_usd":true}`, 400, "balance_usd must be a number"},
		{"balance huge", "POST", "/users", `{"name":"a","balance_usd":1e40}`, 400, "balance_usd is out of range"},
		{"patch blank name", "PATCH", "/users/" + itoa(id), `{"name":""}`, 400, "name must not be empty"},
		{"patch bad status", "PATCH", "/users/" + itoa(id), `{"status":"gone"}`, 400, "status must be one of"},
		{"patch unknown field", "PATCH", "/users/" + itoa(id), `{"balance":1}`, 400, `unknown field "balance"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantError(tt.method, "/api/v1/admin"+tt.path, tt.body, tt.status, "invalid_request_error", tt.msg)
		})
	}
	var list listBody[userView]
	e.mustCall(http.MethodGet, "/api/v1/admin/users", nil, http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].Name != "valid" || list.Items[0].BalanceUSD != "10" {
		t.Errorf("after rejected requests, users = %+v; want only the valid one, unchanged", list.Items)
	}
}

func TestBodyLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	huge := `{"name":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	e.wantError(http.MethodPost, "/api/v1/admin/users", huge, http.StatusRequestEntityTooLarge, "invalid_request_error", "request body too large")
	long := strings.Repeat("x", maxNameLen+1)
	e.wantError(http.MethodPost, "/api/v1/admin/users", `{"name":"`+long+`"}`, http.StatusBadRequest, "invalid_request_error", "name must be at most 200 characters")
	e.wantError(http.MethodGet, "/no/such/path", nil, http.StatusNotFound, "not_found_error", "/no/such/path")
}

func itoa(id int64) string {
	b, _ := json.Marshal(id)
	return string(b)
}
