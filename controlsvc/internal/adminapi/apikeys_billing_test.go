package adminapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

func TestAPIKeyQuotaExpiryAPI(t *testing.T) {
	t.Parallel()
	e, h := newEnvWithHolds(t)
	u, g := e.createUser("u"), e.createGroup("g", "openai")
	var k apiKeyView
	e.mustCall(http.MethodPost, "/api/v1/admin/api-keys", map[string]any{"user_id": u, "group_id": g,
		"quota_usd": 12.5, "expires_at": "2030-01-02T03:04:05+02:00", "status": "disabled"}, http.StatusCreated, &k)
	e.secrets = append(e.secrets, k.Key)
	if numText(k.QuotaUSD) != "12.5" || k.QuotaUsedUSD != "0" || k.QuotaReservedUSD != "0" || k.Status != "disabled" ||
		k.ExpiresAt == nil || !k.ExpiresAt.Equal(time.Date(2030, 1, 2, 1, 4, 5, 0, time.UTC)) {
		t.Fatalf("created = %+v", k)
	}
	var plain apiKeyView
	e.mustCall(http.MethodPost, "/api/v1/admin/api-keys", map[string]any{"user_id": u, "group_id": g}, http.StatusCreated, &plain)
	e.secrets = append(e.secrets, plain.Key)
	_, raw := e.call(http.MethodGet, "/api/v1/admin/api-keys/"+itoa(plain.ID), nil)
	if !strings.Contains(string(raw), `"quota_usd":null`) || !strings.Contains(string(raw), `"expires_at":null`) ||
		!strings.Contains(string(raw), `"quota_used_usd":0`) || strings.Contains(string(raw), `"key"`) {
		t.Errorf("GET plain key = %s", raw)
	}
	// Spend shows in the views.
	if _, err := e.st.Pool.Exec(t.Context(), `UPDATE api_keys SET quota_used_micros = 1500000 WHERE id = $1`, k.ID); err != nil {
		t.Fatal(err)
	}
	hold(t, h, "in-flight", u, k.ID, g, store.BillingBalance, 250_000)
	path := "/api/v1/admin/api-keys/" + itoa(k.ID)
	tests := []struct {
		name  string
		body  string
		check func(apiKeyView) bool
	}{
		{"empty patch keeps everything", `{}`, func(v apiKeyView) bool {
			return numText(v.QuotaUSD) == "12.5" && v.ExpiresAt != nil && v.Status == "disabled" && v.QuotaUsedUSD == "1.5" &&
				v.QuotaReservedUSD == "0.25"
		}},
		{"null clears the quota", `{"quota_usd":null}`, func(v apiKeyView) bool { return v.QuotaUSD == nil && v.ExpiresAt != nil }},
		{"null clears the expiry, enable, rename", `{"expires_at":null,"status":"active","name":"ci"}`, func(v apiKeyView) bool {
			return v.ExpiresAt == nil && v.Status == "active" && v.Name == "ci" && v.QuotaUSD == nil
		}},
		{"set both", `{"quota_usd":0,"expires_at":"2031-05-06T07:08:09Z"}`, func(v apiKeyView) bool {
			return numText(v.QuotaUSD) == "0" && v.ExpiresAt.Equal(time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC))
		}},
	}
	for _, tt := range tests { // sequential
		var got, read apiKeyView
		e.mustCall(http.MethodPatch, path, tt.body, http.StatusOK, &got)
		e.mustCall(http.MethodGet, path, nil, http.StatusOK, &read)
		if !tt.check(got) || !tt.check(read) {
			t.Fatalf("%s: PATCH = %+v, GET = %+v", tt.name, got, read)
		}
	}
	var list listBody[apiKeyView]
	e.mustCall(http.MethodGet, "/api/v1/admin/api-keys?user_id="+itoa(u), nil, http.StatusOK, &list)
	if len(list.Items) != 2 || numText(list.Items[0].QuotaUSD) != "0" || list.Items[0].QuotaUsedUSD != "1.5" {
		t.Errorf("list = %+v", list.Items)
	}
	errs := []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"negative quota", http.MethodPatch, path, `{"quota_usd":-1}`, 400, "quota_usd must not be negative"},
		{"quota as string", http.MethodPatch, path, `{"quota_usd":"1"}`, 400, "quota_usd must be a number"},
		{"bad expiry", http.MethodPatch, path, `{"expires_at":"tomorrow"}`, 400, "expires_at must be an RFC 3339 timestamp"},
		{"expiry as number", http.MethodPatch, path, `{"expires_at":1700000000}`, 400, "expires_at must be an RFC 3339 timestamp string"},
		{"status", http.MethodPatch, path, `{"status":"expired"}`, 400, "status must be one of active, disabled"},
		{"move to another user", http.MethodPatch, path, `{"user_id":1}`, 400, "cannot be changed"},
		{"unknown key", http.MethodPatch, "/api/v1/admin/api-keys/999", `{"name":"x"}`, 404, "api key 999 not found"},
		{"get unknown key", http.MethodGet, "/api/v1/admin/api-keys/999", "", 404, "api key 999 not found"},
		{"create with bad quota", http.MethodPost, "/api/v1/admin/api-keys", `{"user_id":` + itoa(u) + `,"group_id":` + itoa(g) + `,"quota_usd":1.0000001}`,
			400, "quota_usd must have at most 6 decimal places"},
	}
	for _, tt := range errs {
		e.wantStatusError(tt.method, tt.path, tt.body, tt.status, tt.msg)
	}
	// A deleted key is gone for GET and PATCH too.
	if status, _ := e.call(http.MethodDelete, path, nil); status != http.StatusNoContent {
		t.Fatalf("DELETE = %d", status)
	}
	e.wantError(http.MethodGet, path, nil, 404, "not_found_error", "not found")
}
