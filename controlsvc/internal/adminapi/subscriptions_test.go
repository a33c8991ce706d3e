package adminapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

func (e *env) createSubscriptionGroup(name string, body string) int64 {
	e.t.Helper()
	var g idOnly
	e.mustCall(http.MethodPost, "/api/v1/admin/groups", `{"name":"`+name+`","platform":"openai","billing_mode":"subscription"`+body+`}`,
		http.StatusCreated, &g)
	return g.ID
}

func TestSubscriptionsAPI(t *testing.T) {
	t.Parallel()
	e, h := newEnvWithHolds(t)
	u1, u2 := e.createUser("u1"), e.createUser("u2")
	g := e.createSubscriptionGroup("sub", `,"daily_limit_usd":5,"monthly_limit_usd":100`)
	balanceGroup := e.createGroup("bal", "openai")

	var s adminSubscriptionView
	before := time.Now()
	e.mustCall(http.MethodPost, "/api/v1/admin/subscriptions", map[string]any{"user_id": u1, "group_id": g,
		"duration_days": 30, "note": "trial"}, http.StatusCreated, &s)
	if s.ID == 0 || s.UserID != u1 || s.GroupID != g || s.Status != "active" || s.State != "active" || s.Note != "trial" ||
		s.StartsAt.Before(before.Add(-time.Second)) || s.ExpiresAt.Sub(s.StartsAt) != 30*24*time.Hour || s.ReservedUSD != "0" {
		t.Fatalf("created = %+v", s)
	}
	d := s.Windows.Daily
	if d.UsedUSD != "0" || numText(d.LimitUSD) != "5" || numText(d.RemainingUSD) != "5" || d.WindowEnd.Sub(d.WindowStart) != 24*time.Hour ||
		s.Windows.Weekly.LimitUSD != nil || s.Windows.Weekly.RemainingUSD != nil || !s.Windows.Weekly.WindowStart.Equal(s.StartsAt) ||
		s.Windows.Monthly.WindowEnd.Sub(s.StartsAt) != 30*24*time.Hour {
		t.Errorf("windows = %+v", s.Windows)
	}
	// Usage and reservations show in the windows.
	key, _ := e.createKey(u1, g)
	if ins, err := e.st.WriteUsage(t.Context(), store.UsageWrite{RequestID: "r1", GrantID: "g_r1", UserID: u1, APIKeyID: key,
		GroupID: g, Path: "/v1/responses", Model: "gpt-4o", Status: 200, Priced: true, CostMicros: 1_250_000,
		RateMicros: 1_000_000}); err != nil || !ins {
		t.Fatalf("WriteUsage = %v, %v", ins, err)
	}
	hold(t, h, "r2", u1, key, g, store.BillingSubscription, 500_000)
	var got adminSubscriptionView
	e.mustCall(http.MethodGet, "/api/v1/admin/subscriptions/"+itoa(s.ID), nil, http.StatusOK, &got)
	if got.Windows.Daily.UsedUSD != "1.25" || numText(got.Windows.Daily.RemainingUSD) != "3.25" || got.Windows.Weekly.UsedUSD != "1.25" ||
		got.Windows.Monthly.UsedUSD != "1.25" || numText(got.Windows.Monthly.RemainingUSD) != "98.25" || got.ReservedUSD != "0.5" {
		t.Errorf("after usage = %+v", got.Windows)
	}

	future := time.Now().Add(60 * 24 * time.Hour).UTC().Truncate(time.Second)
	errs := []struct {
		name   string
		body   map[string]any
		status int
		msg    string
	}{
		{"balance group", map[string]any{"user_id": u1, "group_id": balanceGroup, "duration_days": 1}, 400,
			`billing_mode "balance"; subscriptions need a group with billing_mode "subscription"`},
		{"overlap", map[string]any{"user_id": u1, "group_id": g, "duration_days": 1}, 409, "overlapping"},
		{"neither end", map[string]any{"user_id": u1, "group_id": g}, 400, "exactly one of expires_at"},
		{"both ends", map[string]any{"user_id": u1, "group_id": g, "duration_days": 1, "expires_at": future}, 400, "exactly one of"},
		{"zero days", map[string]any{"user_id": u1, "group_id": g, "duration_days": 0}, 400, "duration_days must be between 1 and"},
		{"end before start", map[string]any{"user_id": u2, "group_id": g, "starts_at": future, "expires_at": future.Add(-time.Hour)}, 400,
			"expires_at: must be after starts_at"},
		{"bad start", map[string]any{"user_id": u2, "group_id": g, "starts_at": "soon", "duration_days": 1}, 400, "starts_at must be an RFC 3339"},
		{"no user", map[string]any{"group_id": g, "duration_days": 1}, 400, "user_id is required"},
		{"unknown user", map[string]any{"user_id": 999, "group_id": g, "duration_days": 1}, 400, "user 999 does not exist"},
		{"status on create", map[string]any{"user_id": u2, "group_id": g, "duration_days": 1, "status": "active"}, 400, "status cannot be set"},
	}
	for _, tt := range errs {
		e.wantStatusError(http.MethodPost, "/api/v1/admin/subscriptions", tt.body, tt.status, tt.msg)
	}

	// A renewal booked from the end of the first, and one for another user.
	var renewal, other adminSubscriptionView
	e.mustCall(http.MethodPost, "/api/v1/admin/subscriptions", map[string]any{"user_id": u1, "group_id": g,
		"starts_at": s.ExpiresAt, "expires_at": s.ExpiresAt.Add(30 * 24 * time.Hour)}, http.StatusCreated, &renewal)
	if renewal.State != "scheduled" {
		t.Errorf("renewal state = %s, want scheduled", renewal.State)
	}
	e.mustCall(http.MethodPost, "/api/v1/admin/subscriptions", map[string]any{"user_id": u2, "group_id": g,
		"starts_at": "2020-01-01T00:00:00Z", "expires_at": "2020-02-01T00:00:00Z"}, http.StatusCreated, &other)
	if other.State != "expired" || other.Status != "active" {
		t.Errorf("past subscription state = %s / %s, want expired / active", other.State, other.Status)
	}

	path := "/api/v1/admin/subscriptions/" + itoa(s.ID)
	e.wantError(http.MethodPatch, path, map[string]any{"expires_at": s.ExpiresAt.Add(time.Hour)}, 409, "conflict_error", "overlapping")
	var cancelled adminSubscriptionView
	e.mustCall(http.MethodDelete, "/api/v1/admin/subscriptions/"+itoa(renewal.ID), nil, http.StatusOK, &cancelled)
	if cancelled.Status != "cancelled" || cancelled.State != "cancelled" {
		t.Errorf("DELETE = %+v", cancelled)
	}
	var patched adminSubscriptionView
	e.mustCall(http.MethodPatch, path, map[string]any{"expires_at": s.ExpiresAt.Add(time.Hour), "note": "extended"}, http.StatusOK, &patched)
	if !patched.ExpiresAt.Equal(s.ExpiresAt.Add(time.Hour)) || patched.Note != "extended" || patched.Status != "active" {
		t.Errorf("PATCH = %+v", patched)
	}
	patchErrs := []struct {
		name, body string
		msg        string
	}{
		{"bad status", `{"status":"paused"}`, "status must be one of active, cancelled"},
		{"starts_at", `{"starts_at":"2025-01-01T00:00:00Z"}`, "starts_at cannot be changed"},
		{"duration", `{"duration_days":5}`, "duration_days is only for creation"},
		{"user", `{"user_id":2}`, "cannot be changed"},
		{"expiry before start", `{"expires_at":"2000-01-01T00:00:00Z"}`, "expires_at: must be after starts_at"},
	}
	for _, tt := range patchErrs {
		e.wantError(http.MethodPatch, path, tt.body, 400, "invalid_request_error", tt.msg)
	}
	e.wantError(http.MethodPatch, "/api/v1/admin/subscriptions/999", `{"note":"x"}`, 404, "not_found_error", "subscription 999 not found")
	e.wantError(http.MethodDelete, "/api/v1/admin/subscriptions/999", nil, 404, "not_found_error", "subscription 999 not found")
	e.wantError(http.MethodGet, "/api/v1/admin/subscriptions/999", nil, 404, "not_found_error", "subscription 999 not found")

	filters := []struct {
		query string
		want  []int64
	}{
		{"", []int64{s.ID, renewal.ID, other.ID}},
		{"?user_id=" + itoa(u1), []int64{s.ID, renewal.ID}},
		{"?user_id=" + itoa(u1) + "&status=active", []int64{s.ID}},
		{"?status=cancelled", []int64{renewal.ID}},
		{"?group_id=" + itoa(balanceGroup), nil},
	}
	for _, tt := range filters {
		var list listBody[adminSubscriptionView]
		e.mustCall(http.MethodGet, "/api/v1/admin/subscriptions"+tt.query, nil, http.StatusOK, &list)
		var ids []int64
		for _, it := range list.Items {
			ids = append(ids, it.ID)
		}
		if len(ids) != len(tt.want) || (len(ids) > 0 && (ids[0] != tt.want[0] || ids[len(ids)-1] != tt.want[len(tt.want)-1])) {
			t.Errorf("list%s = %v, want %v", tt.query, ids, tt.want)
		}
	}
	e.wantError(http.MethodGet, "/api/v1/admin/subscriptions?status=expired", nil, 400, "invalid_request_error", "status must be one of")
	e.wantError(http.MethodGet, "/api/v1/admin/subscriptions?user_id=x", nil, 400, "invalid_request_error", "user_id must be a positive integer")
}
